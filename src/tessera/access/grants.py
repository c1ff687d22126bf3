"""Grants: time-boxed access given by policy (``jit``), by people (``approval``) or in an
emergency by an admin (``break_glass``); listed, revoked, and expiring by themselves.

A grant's tokens carry its id; revoking a grant revokes them (RFC 7009 semantics,
through the revocation set every replica follows). Break-glass grants live in
memory on every replica (kept current by the change feed): while one is active
for an agent, decisions that would need a person's approval are allowed, and each
such use is recorded as ``access.break_glass.used`` for later review.
"""

from __future__ import annotations

import builtins
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from tessera.access.canonical import asked_hash
from tessera.access.notify import Notifier
from tessera.audit.records import AuditRecord
from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.events.change_feed import Change, publish
from tessera.ids import IdGenerator
from tessera.storage.audit import AuditFilter, SqlAuditStore
from tessera.storage.database import reading, writing
from tessera.storage.tables import access_grants
from tessera.tokens.revocation import RevocationState, revoke_tokens

GRANT_CHANGED = "access_grant"
BREAK_GLASS_USED = "access.break_glass.used"
MIN_JUSTIFICATION = 10


class GrantKind(StrEnum):
    JIT = "jit"
    APPROVAL = "approval"
    BREAK_GLASS = "break_glass"


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    kind: GrantKind
    agent_id: str
    request_id: str | None
    asked: dict[str, Any]
    asked_hash: str
    granted_by: str
    justification: str | None
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_reason: str | None
    jtis: tuple[str, ...]
    reviewed_at: float | None
    reviewed_by: str | None
    review_note: str | None

    def active_at(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def view(self, now: float) -> dict[str, Any]:
        state = (
            "revoked" if self.revoked_at is not None else ("active" if now < self.expires_at else "expired")
        )
        return {
            "id": self.id,
            "kind": self.kind.value,
            "state": state,
            "agent_id": self.agent_id,
            "request_id": self.request_id,
            "asked": self.asked,
            "asked_hash": self.asked_hash,
            "granted_by": self.granted_by,
            "justification": self.justification,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "revoked_reason": self.revoked_reason,
            "tokens": len(self.jtis),
            "reviewed_at": self.reviewed_at,
            "reviewed_by": self.reviewed_by,
            "review_note": self.review_note,
        }


def _grant(row: Any) -> Grant:
    return Grant(
        id=row.id,
        kind=GrantKind(row.kind),
        agent_id=row.agent_id,
        request_id=row.request_id,
        asked=dict(row.asked),
        asked_hash=row.asked_hash,
        granted_by=row.granted_by,
        justification=row.justification,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
        jtis=tuple(row.jtis or ()),
        reviewed_at=row.reviewed_at,
        reviewed_by=row.reviewed_by,
        review_note=row.review_note,
    )


class BreakGlassState:
    """Active break-glass grants per agent, in memory (hot path: no database)."""

    def __init__(self) -> None:
        self._grants: dict[str, tuple[str, str, float]] = {}  # grant id → (agent, granted_by, expires)
        self._lock = threading.Lock()

    def put(self, grant: Grant) -> None:
        with self._lock:
            if grant.revoked_at is None:
                self._grants[grant.id] = (grant.agent_id, grant.granted_by, grant.expires_at)
            else:
                self._grants.pop(grant.id, None)

    def active(self, agent_id: str, now: float) -> str | None:
        """The id of a live break-glass grant for ``agent_id``, if any."""
        with self._lock:
            for grant_id, (agent, _by, expires) in self._grants.items():
                if agent == agent_id and now < expires:
                    return grant_id
        return None

    def prune(self, now: float) -> None:
        with self._lock:
            for grant_id in [g for g, (_a, _b, expires) in self._grants.items() if expires <= now]:
                del self._grants[grant_id]


class GrantService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor,
        *,
        revocation: RevocationState,
        notifier: Notifier,
        break_glass_max_ttl: int,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._auditor = auditor
        self._revocation = revocation
        self._notifier = notifier
        self._break_glass_max_ttl = break_glass_max_ttl
        self.break_glass = BreakGlassState()

    # --- storage ----------------------------------------------------------------------

    def insert(
        self,
        conn: Connection,
        *,
        kind: GrantKind,
        agent_id: str,
        request_id: str | None,
        asked: dict[str, Any],
        granted_by: str,
        expires_at: float,
        justification: str | None = None,
    ) -> str:
        grant_id = self._ids.new("grt")
        conn.execute(
            insert(access_grants).values(
                id=grant_id,
                kind=kind.value,
                agent_id=agent_id,
                request_id=request_id,
                asked=asked,
                asked_hash=asked_hash(asked),
                granted_by=granted_by,
                justification=justification,
                created_at=self._clock.now(),
                expires_at=expires_at,
                jtis=[],
            )
        )
        return grant_id

    def add_token(self, grant_id: str, jti: str) -> None:
        with writing(self._engine) as conn:
            row = conn.execute(select(access_grants.c.jtis).where(access_grants.c.id == grant_id)).first()
            if row is not None:
                conn.execute(
                    update(access_grants)
                    .where(access_grants.c.id == grant_id)
                    .values(jtis=[*(row.jtis or []), jti][-100:])
                )

    def get(self, grant_id: str) -> Grant:
        with reading(self._engine) as conn:
            row = conn.execute(select(access_grants).where(access_grants.c.id == grant_id)).first()
        if row is None:
            raise NotFound(f"no grant '{grant_id[:80]}'")
        return _grant(row)

    def list(
        self, *, agent_id: str | None = None, kind: GrantKind | None = None, active_only: bool = False
    ) -> list[Grant]:
        query = select(access_grants)
        if agent_id is not None:
            query = query.where(access_grants.c.agent_id == agent_id)
        if kind is not None:
            query = query.where(access_grants.c.kind == kind.value)
        if active_only:
            query = query.where(
                access_grants.c.revoked_at.is_(None), access_grants.c.expires_at > self._clock.now()
            )
        with reading(self._engine) as conn:
            rows = conn.execute(query.order_by(access_grants.c.created_at.desc()).limit(1000)).all()
        return [_grant(r) for r in rows]

    def load(self) -> None:
        for grant in self.list(kind=GrantKind.BREAK_GLASS, active_only=True):
            self.break_glass.put(grant)

    def on_change(self, change: Change) -> None:
        try:
            grant = self.get(change.subject)
        except NotFound:
            return
        if grant.kind is GrantKind.BREAK_GLASS:
            self.break_glass.put(grant)

    # --- operations -------------------------------------------------------------------

    def revoke(self, grant_id: str, reason: str, context: RequestContext) -> Grant:
        """Revoke the grant and every token issued under it, with their records, in one transaction."""
        now = self._clock.now()
        grant = self.get(grant_id)
        if grant.revoked_at is not None:
            raise Conflict(f"grant '{grant_id}' is already revoked")
        revoked: dict[str, float] = {}
        with writing(self._engine) as conn:
            conn.execute(
                update(access_grants)
                .where(access_grants.c.id == grant_id)
                .values(revoked_at=now, revoked_reason=reason)
            )
            for jti in grant.jtis:
                revoked.update(revoke_tokens(conn, now=now, reason=f"grant {grant_id} revoked", jti=jti))
            publish(conn, GRANT_CHANGED, grant_id, {"revoked": True}, now)
            self._auditor.record_in(
                conn,
                event(
                    "access.grant_revoked",
                    context,
                    subject=grant.agent_id,
                    reason=reason,
                    data={"grant_id": grant_id, "kind": grant.kind.value, "tokens": len(revoked)},
                ),
            )
        self._revocation.mark_revoked(revoked)
        updated = self.get(grant_id)
        self.break_glass.put(updated)
        return updated

    def grant_break_glass(
        self, agent_id: str, justification: str, duration: int, context: RequestContext
    ) -> Grant:
        """Emergency access for ``agent_id``: skips human approval until it expires; loudly recorded."""
        justification = " ".join(justification.split())
        if len(justification) < MIN_JUSTIFICATION:
            raise ValidationFailed(f"a justification of at least {MIN_JUSTIFICATION} characters is required")
        if not 1 <= duration <= self._break_glass_max_ttl:
            raise ValidationFailed(
                f"break-glass duration {duration} must be 1-{self._break_glass_max_ttl} seconds"
            )
        now = self._clock.now()
        granted_by = context.actor.id or context.actor.type.value
        asked = {"agent": agent_id, "break_glass": True}
        with writing(self._engine) as conn:
            grant_id = self.insert(
                conn,
                kind=GrantKind.BREAK_GLASS,
                agent_id=agent_id,
                request_id=None,
                asked=asked,
                granted_by=granted_by,
                expires_at=now + duration,
                justification=justification,
            )
            publish(conn, GRANT_CHANGED, grant_id, {"break_glass": True}, now)
            self._auditor.record_in(
                conn,
                event(
                    "access.break_glass.granted",
                    context,
                    subject=agent_id,
                    outcome="permit",
                    reason=justification,
                    data={"grant_id": grant_id, "severity": "critical", "expires_at": now + duration},
                ),
            )
        grant = self.get(grant_id)
        self.break_glass.put(grant)
        self._notifier.approvers(
            f"BREAK-GLASS: emergency access for agent {agent_id}",
            [
                f"*granted by* {granted_by}",
                f"*justification* {justification}",
                f"*for* {duration} s (grant `{grant_id}`)",
                "every use is recorded for review: `tessera access break-glass list`",
            ],
        )
        return grant

    def record_use(self, grant_id: str, agent_id: str, what: dict[str, Any], context: RequestContext) -> None:
        self._auditor.record_async(
            event(
                BREAK_GLASS_USED,
                context,
                subject=agent_id,
                outcome="permit",
                data={"grant_id": grant_id, "severity": "critical", **what},
            )
        )

    def uses(self, grant_id: str) -> builtins.list[AuditRecord]:
        with reading(self._engine) as conn:
            records = SqlAuditStore().search(
                conn, AuditFilter(type=BREAK_GLASS_USED), limit=5000, newest_first=False
            )
        return [r for r in records if r.data.get("grant_id") == grant_id]

    def review(self, grant_id: str, note: str, context: RequestContext) -> Grant:
        grant = self.get(grant_id)
        if grant.kind is not GrantKind.BREAK_GLASS:
            raise ValidationFailed(f"grant '{grant_id}' is not a break-glass grant")
        note = " ".join(note.split())
        if not note:
            raise ValidationFailed("a review note is required")
        now = self._clock.now()
        reviewer = context.actor.id or context.actor.type.value
        uses = len(self.uses(grant_id))
        with writing(self._engine) as conn:
            conn.execute(
                update(access_grants)
                .where(access_grants.c.id == grant_id)
                .values(reviewed_at=now, reviewed_by=reviewer, review_note=note[:2000])
            )
            self._auditor.record_in(
                conn,
                event(
                    "access.break_glass.reviewed",
                    context,
                    subject=grant.agent_id,
                    reason=note[:500],
                    data={"grant_id": grant_id, "uses": uses},
                ),
            )
        return self.get(grant_id)
