"""The audit interface the rest of Tessera records through.

Three ways to record, by what the operation needs:

- :meth:`Auditor.record_in` appends inside the caller's transaction, so the
  change and its record commit together or not at all (admin changes,
  lifecycle, revocation, key rotation);
- :meth:`Auditor.record` goes through the group-commit writer and returns once
  the record is durable (token issuance, decisions): if the log cannot be
  written it raises ``ServiceUnavailable`` and the caller must not proceed;
- :meth:`Auditor.record_async` queues a record without waiting (refused
  requests, reads, introspection), logging if it cannot be written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace

from sqlalchemy import Connection
from sqlalchemy import event as sa_event
from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.records import Actor, ActorType, AuditEvent, AuditRecord, SecretHasher
from tessera.audit.writer import AuditUnavailable, AuditWriter
from tessera.clock import Clock
from tessera.errors import ServiceUnavailable
from tessera.ids import IdGenerator
from tessera.storage.audit import AuditHeadMissing, SqlAuditStore

log = logging.getLogger(__name__)
SYSTEM = Actor(ActorType.SYSTEM, "tessera")
#: Records appended in a caller's transaction wait here (on the DBAPI connection) until it commits.
_PENDING = "tessera.audit.pending"
_SAVEPOINTS = "tessera.audit.savepoints"
RecordsListener = Callable[[list[AuditRecord]], None]
ADMIN = Actor(ActorType.ADMIN, "admin")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asked, from where, and why: attached to every record an operation writes."""

    actor: Actor = SYSTEM
    ip: str | None = None
    zone: str | None = None
    reason: str | None = None


class Auditor:
    def __init__(self, writer: AuditWriter, clock: Clock, ids: IdGenerator, hasher: SecretHasher) -> None:
        self.writer = writer
        self._clock = clock
        self._ids = ids
        self._hasher = hasher
        self._store = SqlAuditStore()
        #: Maps a request's address to its network zone for the record (set by the runtime).
        self.zone_of: Callable[[str | None], str] | None = None
        self._listeners: list[RecordsListener] = []
        writer.on_committed = self._committed
        engine = getattr(writer, "_engine", None)
        if engine is not None:
            sa_event.listen(engine, "commit", self._on_commit)
            sa_event.listen(engine, "rollback", self._on_rollback)
            sa_event.listen(engine, "savepoint", self._on_savepoint)
            sa_event.listen(engine, "rollback_savepoint", self._on_rollback_savepoint)
            sa_event.listen(engine, "release_savepoint", self._on_release_savepoint)

    # --- subscribers: every record, once it is durable ---------------------------------------

    def subscribe(self, listener: RecordsListener) -> None:
        """Hand every accepted record to ``listener`` (after its commit); it must not block."""
        self._listeners.append(listener)

    def _committed(self, records: list[AuditRecord]) -> None:
        for listener in self._listeners:
            try:
                listener(records)
            except Exception:
                log.exception("audit record listener failed")

    def _on_commit(self, conn: Connection) -> None:
        pending = conn.info.pop(_PENDING, None)
        conn.info.pop(_SAVEPOINTS, None)
        if pending:
            self._committed(pending)

    def _on_rollback(self, conn: Connection) -> None:
        conn.info.pop(_PENDING, None)
        conn.info.pop(_SAVEPOINTS, None)

    def _on_savepoint(self, conn: Connection, name: str) -> None:
        conn.info.setdefault(_SAVEPOINTS, {})[name] = len(conn.info.get(_PENDING, ()))

    def _on_rollback_savepoint(self, conn: Connection, name: str, _context: object) -> None:
        mark = conn.info.get(_SAVEPOINTS, {}).pop(name, None)
        pending = conn.info.get(_PENDING)
        if mark is not None and pending is not None:
            del pending[mark:]

    def _on_release_savepoint(self, conn: Connection, name: str, _context: object) -> None:
        conn.info.get(_SAVEPOINTS, {}).pop(name, None)

    def _zoned(self, audit_event: AuditEvent) -> AuditEvent:
        if audit_event.zone is None and audit_event.ip and self.zone_of is not None:
            return replace(audit_event, zone=self.zone_of(audit_event.ip))
        return audit_event

    def token_hash(self, value: str | None) -> str | None:
        """HMAC of a token id or secret; never store the value itself."""
        return self._hasher(value) if value else None

    def record(self, event: AuditEvent) -> AuditRecord:
        try:
            return self.writer.record(self._zoned(event))
        except AuditUnavailable as exc:
            raise ServiceUnavailable(f"audit log cannot be written; '{event.type}' refused") from exc

    def record_decision(self, event: AuditEvent, *, fail_open: bool) -> AuditRecord | None:
        """A decision's record: durable, or (only with ``fail_open``) logged loudly and skipped.

        With ``fail_open`` off, the default, an unwritable log raises and the
        caller must answer deny.
        """
        try:
            return self.writer.record(self._zoned(event))
        except AuditUnavailable as exc:
            if not fail_open:
                raise ServiceUnavailable("audit log cannot be written; decision denied") from exc
            log.critical(
                "AUDIT FAIL-OPEN: decision for subject %s answered WITHOUT an audit record (%s)",
                event.subject,
                exc,
            )
            return None

    def record_decisions(self, events: list[AuditEvent], *, fail_open: bool) -> list[bool]:
        """Records for a batch of decisions, submitted together so they share group commits.

        Returns, per event, whether the decision may stand: True once its record is
        durable (or, with ``fail_open``, when it is not — logged loudly); False means
        the caller must answer deny.
        """
        futures = [self.writer.submit(self._zoned(e)) for e in events]
        deadline = time.monotonic() + self.writer.ack_timeout
        outcome: list[bool] = []
        for audit_event, future in zip(events, futures, strict=True):
            try:
                future.result(timeout=max(deadline - time.monotonic(), 0.0))
                outcome.append(True)
            except (AuditUnavailable, FutureTimeout) as exc:
                if fail_open:
                    log.critical(
                        "AUDIT FAIL-OPEN: decision for subject %s answered WITHOUT an audit record (%s)",
                        audit_event.subject,
                        exc,
                    )
                outcome.append(fail_open)
        return outcome

    def record_async(self, event: AuditEvent) -> None:
        future = self.writer.submit(self._zoned(event))
        future.add_done_callback(_log_failure)

    def record_in(self, conn: Connection, event: AuditEvent) -> AuditRecord:
        """Append in the caller's transaction; if that fails, raise so the change rolls back too."""
        now_ms = int(self._clock.now() * 1000)
        try:
            record = self._store.append(conn, [(self._zoned(event), self._ids.new("aud"), now_ms)])[0]
        except (SQLAlchemyError, AuditHeadMissing) as exc:
            log.exception("audit append failed; '%s' refused", event.type)
            raise ServiceUnavailable(f"audit log cannot be written; '{event.type}' refused") from exc
        self.writer.note_appended(1)
        if self._listeners:
            conn.info.setdefault(_PENDING, []).append(record)
        return record


def _log_failure(future: object) -> None:
    exception = getattr(future, "exception", lambda: None)()
    if exception is not None:
        log.error("audit record could not be written: %s", exception)


def event(
    type_: str,
    context: RequestContext,
    *,
    subject: str | None = None,
    task_id: str | None = None,
    token_hash: str | None = None,
    reason: str | None = None,
    data: dict[str, object] | None = None,
    outcome: str | None = None,
    policies: tuple[str, ...] = (),
    policy_version: str | None = None,
    decision_id: str | None = None,
) -> AuditEvent:
    """Build an event carrying the request context's actor, address and reason."""
    return AuditEvent(
        type=type_,
        actor=context.actor,
        subject=subject,
        task_id=task_id,
        token_hash=token_hash,
        ip=context.ip,
        zone=context.zone,
        reason=reason or context.reason,
        data=dict(data or {}),
        outcome=outcome,
        policies=policies,
        policy_version=policy_version,
        decision_id=decision_id,
    )


def record_revocations(
    auditor: Auditor,
    conn: Connection,
    context: RequestContext,
    revoked: dict[str, float],
    *,
    agent_id: str | None,
    reason: str,
) -> None:
    """One ``token.revoked`` record per token, in the revoking transaction."""
    for jti in sorted(revoked):
        token_hash = auditor.token_hash(jti)
        auditor.record_in(
            conn, event("token.revoked", context, subject=agent_id, token_hash=token_hash, reason=reason)
        )
