"""The group-commit audit writer.

Callers hand events to :meth:`AuditWriter.record`, which blocks until the
record is committed and returns it, or raises :class:`AuditUnavailable`. One
background thread drains the queue: it waits up to ``max_delay`` for more events
after the first, but no longer once it holds as many as the batch before (what
is already queued still joins), writes the whole batch in one transaction (one
fsync), then acknowledges every event in it. Nothing is acknowledged before its
commit, so a crash loses only records whose callers never got an answer.

Closing a batch once it is as large as the last one keeps the batches that the
load forms (records that arrive during a commit wait for the next) without
idling ``max_delay`` on every one: a lone caller is written at once, and callers
who come back together are written together as soon as they are all in.

After each batch the writer may write a signed checkpoint (every
``checkpoint_every`` records or ``checkpoint_interval`` seconds). Forwarding to
SIEM sinks is not its business: ``tessera.audit.forwarder`` tails the committed
log, so records appended in callers' own transactions are forwarded too.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tessera.audit.checkpoints import sign_checkpoint
from tessera.audit.records import AuditEvent, AuditRecord
from tessera.clock import Clock
from tessera.ids import IdGenerator
from tessera.storage.audit import SqlAuditStore
from tessera.storage.database import writing

log = logging.getLogger(__name__)


class AuditUnavailable(Exception):
    """The audit log could not be written; the operation that needed it must not proceed."""


@dataclass(frozen=True, slots=True)
class CheckpointSigner:
    private_key: Any
    kid: str
    alg: str


class AuditWriter:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        *,
        issuer: str,
        signer: Callable[[], CheckpointSigner | None],
        max_batch: int = 512,
        max_delay: float = 0.002,
        ack_timeout: float = 10.0,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 60.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._issuer = issuer
        self._signer = signer
        self._store = SqlAuditStore()
        self._queue: queue.Queue[tuple[AuditEvent, Future[AuditRecord]] | None] = queue.Queue()
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._ack_timeout = ack_timeout
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._since_checkpoint = 0
        self._last_checkpoint_at = clock.now()
        self._last_batch = 1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Called with each committed batch (the detector's event stream); must not block.
        self.on_committed: Callable[[list[AuditRecord]], None] | None = None

    # --- API for callers -----------------------------------------------------------------

    def submit(self, event: AuditEvent) -> Future[AuditRecord]:
        future: Future[AuditRecord] = Future()
        if self._thread is None or not self._thread.is_alive():
            # Not started (tests, CLI tools): write synchronously, same guarantees.
            with contextlib.suppress(AuditUnavailable):  # _commit settles the future either way
                self._commit([(event, future)])
            return future
        self._queue.put((event, future))
        return future

    @property
    def ack_timeout(self) -> float:
        return self._ack_timeout

    def record(self, event: AuditEvent) -> AuditRecord:
        """Append ``event`` and return its record once durable; raise ``AuditUnavailable`` if not."""
        future = self.submit(event)
        try:
            return future.result(timeout=self._ack_timeout)
        except FutureTimeout as exc:
            raise AuditUnavailable("audit log did not acknowledge the record in time") from exc

    # --- the writer thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            deadline = time.monotonic() + self._max_delay
            while len(batch) < self._max_batch:
                remaining = deadline - time.monotonic()
                wait = remaining > 0 and len(batch) < self._last_batch
                try:
                    nxt = self._queue.get(timeout=remaining) if wait else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._last_batch = len(batch)
            with contextlib.suppress(AuditUnavailable):  # the futures already carry the error
                self._commit(batch)

    def _commit(self, batch: list[tuple[AuditEvent, Future[AuditRecord]]]) -> list[AuditRecord]:
        now_ms = int(self._clock.now() * 1000)
        prepared = [(event, self._ids.new("aud"), now_ms) for event, _ in batch]
        try:
            with self._lock, writing(self._engine) as conn:
                records = self._store.append(conn, prepared)
        except Exception as exc:
            log.exception("audit append failed; %d record(s) refused", len(batch))
            error = AuditUnavailable("audit log cannot be written")
            error.__cause__ = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            raise error from exc
        for (_, future), record in zip(batch, records, strict=True):
            if not future.done():
                future.set_result(record)
        if self.on_committed is not None:
            self.on_committed(records)
        self._since_checkpoint += len(records)
        self._maybe_checkpoint()
        return records

    def note_appended(self, count: int) -> None:
        """Count records appended outside the writer (in callers' transactions) toward a checkpoint."""
        self._since_checkpoint += count

    def checkpoint_if_due(self) -> None:
        """Called by the maintenance loop: a checkpoint every N records or T seconds, quiet or not."""
        elapsed = self._clock.now() - self._last_checkpoint_at
        if self._since_checkpoint >= self._checkpoint_every or elapsed >= self._checkpoint_interval:
            self.checkpoint()

    def _maybe_checkpoint(self) -> None:
        elapsed = self._clock.now() - self._last_checkpoint_at
        due = self._since_checkpoint >= self._checkpoint_every or (
            self._since_checkpoint > 0 and elapsed >= self._checkpoint_interval
        )
        if due:
            try:
                self.checkpoint()
            except Exception:
                log.exception("writing an audit checkpoint failed; will retry after the next batch")

    def checkpoint(self) -> int | None:
        """Sign the current head if it moved since the last checkpoint; returns its seq."""
        signer = self._signer()
        if signer is None:
            return None
        with self._lock, writing(self._engine) as conn:
            head = self._store.head(conn, lock=True)
            last = self._store.last_checkpoint(conn)
            self._since_checkpoint = 0
            self._last_checkpoint_at = self._clock.now()
            if head.seq == 0 or (last is not None and last.seq >= head.seq):
                return None
            checkpoint = sign_checkpoint(
                signer.private_key,
                signer.kid,
                signer.alg,
                issuer=self._issuer,
                seq=head.seq,
                head_hash=head.hash,
                ts_ms=int(self._clock.now() * 1000),
            )
            self._store.add_checkpoint(conn, checkpoint)
        return checkpoint.seq
