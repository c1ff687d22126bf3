"""Forwarding every committed audit record to the configured sinks, in chain order.

The forwarder tails ``audit_records`` by ``seq`` — the order records were
chained and committed, since a record's seq is taken under the chain-head lock
held until commit — so records appended inside a caller's transaction (admin
changes, lifecycle, revocations…) reach the SIEM exactly like those of the
group-commit writer.

One replica forwards at a time: it holds a lease in the database and keeps a
shared cursor there (:mod:`tessera.storage.forwarding`). The cursor survives
restarts, so records committed while a replica was down or restarting are
forwarded when forwarding resumes; when the forwarding replica dies, another
takes the lease over once it lapses and carries on from the cursor. Delivery is
at least once: a batch handed to the sinks just before a lease was lost can be
handed over again by the next holder, so a SIEM should deduplicate on the record
``id``. The cursor starts at the head of the log the first time forwarding is
configured; use ``tessera audit export`` for what came before.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from tessera.audit.sinks import Sink
from tessera.clock import Clock, SystemClock
from tessera.ids import RandomIds
from tessera.storage.audit import AuditFilter, SqlAuditStore
from tessera.storage.database import reading, writing
from tessera.storage.forwarding import SqlForwardingLease

log = logging.getLogger(__name__)
BATCH = 500
MIN_LEASE_SECONDS = 5.0


class AuditForwarder:
    def __init__(
        self,
        engine: Engine,
        sinks: list[Sink],
        *,
        poll_interval: float = 0.2,
        clock: Clock | None = None,
        lease_seconds: float | None = None,
        owner: str | None = None,
    ) -> None:
        self._engine = engine
        self._sinks = list(sinks)
        self._poll_interval = poll_interval
        self._clock = clock or SystemClock()
        self._lease_seconds = lease_seconds or max(MIN_LEASE_SECONDS, 25 * poll_interval)
        self.owner = owner or RandomIds().new("fwd")
        self._store = SqlAuditStore()
        self._lease = SqlForwardingLease()
        self._position = 0
        self._held_until = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def position(self) -> int:
        """The last seq this forwarder handed to its sinks (0 before it held the lease)."""
        return self._position

    @property
    def holds_lease(self) -> bool:
        return self._held_until > self._clock.now()

    def sync_position(self) -> None:
        """Move the shared cursor to the current head: forward only what commits from now on."""
        with writing(self._engine) as conn:
            head = self._store.head(conn).seq
            now = self._clock.now()
            if self._lease.claim(conn, self.owner, now, self._lease_seconds, head) is not None:
                self._lease.advance(conn, self.owner, head, now, self._lease_seconds)
                self._position, self._held_until = head, now + self._lease_seconds

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-audit-forwarder", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.forward_once()  # what was committed before the stop still goes out
            if self._held_until:
                with writing(self._engine) as conn:
                    self._lease.release(conn, self.owner, self._clock.now())
                self._held_until = 0.0
        except Exception:
            log.exception("audit forwarding at shutdown failed; the next holder of the lease resumes")

    def _claim(self) -> int | None:
        """The position to forward from if this replica holds the lease, else ``None``."""
        now = self._clock.now()
        if self._held_until - now > self._lease_seconds / 2:
            return self._position  # held, and far from lapsing: no write needed
        with reading(self._engine) as conn:
            current = self._lease.read(conn)
        if current is not None and current.owner != self.owner and current.lease_until > now:
            self._held_until = 0.0
            return None
        try:
            with writing(self._engine) as conn:
                start = self._store.head(conn).seq
                position = self._lease.claim(conn, self.owner, now, self._lease_seconds, start)
        except IntegrityError:
            return None  # another replica created the cursor at the same moment; it holds the lease
        if position is None:
            self._held_until = 0.0
            return None
        if current is None or current.owner != self.owner:
            log.info("audit forwarding: this replica took the lease at seq %d", position)
        self._position, self._held_until = position, now + self._lease_seconds
        return position

    def forward_once(self) -> int:
        """Hand every record after the shared cursor to every sink; returns how many."""
        forwarded = 0
        while True:
            position = self._claim()
            if position is None:
                return forwarded
            with reading(self._engine) as conn:
                records = self._store.search(
                    conn, AuditFilter(after_seq=position), limit=BATCH, newest_first=False
                )
            if not records:
                return forwarded
            for sink in self._sinks:
                try:
                    sink.deliver(records)
                except Exception:
                    log.exception("audit sink failed; the primary log is unaffected")
            now = self._clock.now()
            with writing(self._engine) as conn:
                kept = self._lease.advance(conn, self.owner, records[-1].seq, now, self._lease_seconds)
            if not kept:
                log.warning("audit forwarding: lease lost; another replica carries on from the cursor")
                self._held_until = 0.0
                return forwarded
            self._position, self._held_until = records[-1].seq, now + self._lease_seconds
            forwarded += len(records)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.forward_once()
            except Exception:
                log.exception("audit forwarding failed; retrying")
            self._wake.wait(self._poll_interval)
            self._wake.clear()
