"""Forwarding every committed audit record to the configured sinks, in chain order.

The forwarder tails ``audit_records`` by ``seq`` — the order records were
chained and committed, since a record's seq is taken under the chain-head lock
held until commit — so records appended inside a caller's transaction (admin
changes, lifecycle, revocations…) reach the SIEM exactly like those of the
group-commit writer. Each process forwards the records committed while it runs,
starting at the head it found on start; with several replicas forwarding to one
SIEM, deduplicate on the record ``id`` (or configure sinks on one replica).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from tessera.audit.sinks import Sink
from tessera.storage.audit import AuditFilter, SqlAuditStore
from tessera.storage.database import reading

log = logging.getLogger(__name__)
BATCH = 500


class AuditForwarder:
    def __init__(self, engine: Engine, sinks: list[Sink], *, poll_interval: float = 0.2) -> None:
        self._engine = engine
        self._sinks = list(sinks)
        self._poll_interval = poll_interval
        self._store = SqlAuditStore()
        self._position = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def position(self) -> int:
        return self._position

    def sync_position(self) -> None:
        """Start after the current head: forward only what is committed from now on."""
        with reading(self._engine) as conn:
            self._position = self._store.head(conn).seq

    def start(self) -> None:
        self.sync_position()
        self._thread = threading.Thread(target=self._run, name="tessera-audit-forwarder", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.forward_once()  # what was committed before the stop still goes out

    def forward_once(self) -> int:
        """Hand every record after the position to every sink; returns how many."""
        forwarded = 0
        while True:
            with reading(self._engine) as conn:
                records = self._store.search(
                    conn, AuditFilter(after_seq=self._position), limit=BATCH, newest_first=False
                )
            if not records:
                return forwarded
            for sink in self._sinks:
                try:
                    sink.deliver(records)
                except Exception:
                    log.exception("audit sink failed; the primary log is unaffected")
            self._position = records[-1].seq
            forwarded += len(records)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.forward_once()
            except Exception:
                log.exception("audit forwarding failed; retrying")
            self._wake.wait(self._poll_interval)
            self._wake.clear()
