"""The detector's event stream: every accepted audit record, handed over without waiting.

The audit layer calls :meth:`EventStream.offer` once a record is durable (the
group-commit writer after its commit; :meth:`Auditor.record_in` when the
caller's transaction commits). ``offer`` never blocks: records go into a
bounded queue that one background thread drains into the subscribers. When the
queue is full the record is dropped and counted (``dropped``) — a request never
waits on detection, and a slow detector costs coverage, not latency.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable

from tessera.audit.records import AuditRecord

log = logging.getLogger(__name__)
Subscriber = Callable[[AuditRecord], None]


class EventStream:
    def __init__(self, capacity: int = 10_000) -> None:
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(maxsize=capacity)
        self._subscribers: list[Subscriber] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.delivered = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def offer(self, records: Iterable[AuditRecord]) -> None:
        """Queue records for the subscribers; never blocks (full queue: drop and count)."""
        if not self._subscribers:
            return
        for record in records:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                with self._lock:
                    self.dropped += 1

    def pending(self) -> int:
        return self._queue.qsize()

    def drain(self) -> int:
        """Deliver everything queued, in this thread (tests and tools without the thread)."""
        handled = 0
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return handled
            if record is not None:
                self._deliver(record)
                handled += 1

    def _deliver(self, record: AuditRecord) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(record)
            except Exception:
                log.exception("event subscriber failed on audit record %s (%s)", record.seq, record.type)
        self.delivered += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-event-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=1.0)
            self._thread.join(timeout=5)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            self._deliver(record)
