"""The change feed: a monotonic ``changes`` table that every worker and replica tails.

Writers call :func:`publish` inside the transaction that makes the change, so the
entry commits atomically with it. A :class:`ChangeFollower` per process reads new
entries and hands each to the handler registered for its kind. PostgreSQL wakes
followers with ``NOTIFY`` at once; SQLite is polled.

Sequence numbers can commit out of order on PostgreSQL (a transaction that took
seq 7 may commit after one that took seq 8). The follower therefore keeps a
low-water mark: everything at or below it has been seen, and it re-reads above
it until a gap is either filled or older than ``gap_grace`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text

from tessera.clock import Clock
from tessera.storage.database import is_postgres, reading
from tessera.storage.tables import changes

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "tessera_changes"


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str
    subject: str
    payload: dict[str, Any]
    created_at: float


Handler = Callable[[Change], None]


def publish(conn: Connection, kind: str, subject: str, payload: dict[str, Any], now: float) -> None:
    """Append a change in the caller's transaction (and wake PostgreSQL listeners on commit)."""
    conn.execute(insert(changes).values(kind=kind, subject=subject, payload=payload, created_at=now))
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def latest_seq(engine: Engine) -> int:
    with reading(engine) as conn:
        return int(conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one())


class ChangeFollower:
    """Tails the change feed and dispatches entries to handlers, in ``seq`` order."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        start_after: int,
        poll_interval: float = 0.2,
        gap_grace: float = 10.0,
        batch: int = 500,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._low_water = start_after
        self._seen_above: set[int] = set()
        self._poll_interval = poll_interval
        self._gap_grace = gap_grace
        self._batch = batch
        self._handlers: dict[str, list[Handler]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._lock = threading.Lock()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    @property
    def position(self) -> int:
        return self._low_water

    def poll_once(self) -> int:
        """Read and dispatch what is new; returns how many entries were handled."""
        with self._lock:
            with reading(self._engine) as conn:
                rows = conn.execute(
                    select(changes)
                    .where(changes.c.seq > self._low_water)
                    .order_by(changes.c.seq)
                    .limit(self._batch)
                ).all()
            handled = 0
            for row in rows:
                if row.seq in self._seen_above:
                    continue
                self._dispatch(Change(row.seq, row.kind, row.subject, dict(row.payload), row.created_at))
                self._seen_above.add(row.seq)
                handled += 1
            self._advance_low_water(list(rows))
            return handled

    def _advance_low_water(self, rows: list[Any]) -> None:
        now = self._clock.now()
        created = {row.seq: row.created_at for row in rows}
        while True:
            nxt = self._low_water + 1
            if nxt in self._seen_above:
                self._seen_above.discard(nxt)
                self._low_water = nxt
                continue
            # A gap: skip it only once every later entry we hold is older than the grace period.
            later = [seq for seq in self._seen_above if seq > nxt]
            if later and all(now - created.get(seq, now) > self._gap_grace for seq in later):
                self._low_water = nxt
                continue
            break

    def _dispatch(self, change: Change) -> None:
        for handler in self._handlers.get(change.kind, ()):
            try:
                handler(change)
            except Exception:
                log.exception("change handler for %s failed on seq %s", change.kind, change.seq)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-change-follower", daemon=True)
        self._thread.start()
        if is_postgres(self._engine):
            self._listener = threading.Thread(target=self._listen, name="tessera-change-listen", daemon=True)
            self._listener.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._listener):
            if thread is not None:
                thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("change feed poll failed; retrying")
            self._wake.wait(self._poll_interval)
            self._wake.clear()

    def _listen(self) -> None:
        """PostgreSQL only: block on LISTEN and wake the poller on each NOTIFY."""
        while not self._stop.is_set():
            try:
                raw = self._engine.raw_connection()
                try:
                    driver = raw.driver_connection
                    assert driver is not None  # noqa: S101 - psycopg always has one
                    driver.autocommit = True
                    driver.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in driver.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
                finally:
                    raw.invalidate()
            except Exception:
                log.warning("change feed listener lost its connection; reconnecting", exc_info=True)
                self._stop.wait(1.0)
