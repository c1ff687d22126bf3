"""Forwarding audit records to a SIEM: a rotating JSON Lines file and an HTTP endpoint.

Sinks receive records after they are committed to the primary log. They never
block it and never lose anything from it: the file sink appends and rotates by
size; the HTTP sink queues (bounded), sends batches from its own thread, and
retries with exponential backoff. When its queue is full it drops from the
*forwarding* queue (counted in ``dropped``), never from the primary log, which
can always be re-exported.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Protocol

import httpx

from tessera.audit.records import AuditRecord

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives committed records, in chain order; must not raise into the forwarder."""

    def deliver(self, records: list[AuditRecord]) -> None: ...


def _line(record: AuditRecord) -> str:
    return json.dumps(record.as_dict(), sort_keys=True, ensure_ascii=False) + "\n"


class JsonlFileSink:
    """Appends one JSON object per line; rotates to ``.1`` … ``.N`` past ``max_bytes``."""

    def __init__(self, path: Path, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def deliver(self, records: list[AuditRecord]) -> None:
        data = "".join(_line(r) for r in records).encode("utf-8")
        with self._lock:
            if self.path.exists() and self.path.stat().st_size + len(data) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def _rotate(self) -> None:
        for index in range(self.backups, 0, -1):
            source = self.path if index == 1 else self.path.with_name(f"{self.path.name}.{index - 1}")
            target = self.path.with_name(f"{self.path.name}.{index}")
            if source.exists():
                source.replace(target)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)


class HttpSink:
    """POSTs batches as ``application/x-ndjson`` with retries; runs on its own thread."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        batch_size: int = 100,
        max_queue: int = 10_000,
        max_backoff: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        self._headers = {"Content-Type": "application/x-ndjson", **(headers or {})}
        self._batch_size = batch_size
        self._queue: queue.Queue[AuditRecord] = queue.Queue(maxsize=max_queue)
        self._max_backoff = max_backoff
        self._client = client or httpx.Client(timeout=5.0, follow_redirects=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tessera-audit-http-sink", daemon=True)
        self.delivered = 0
        self.dropped = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_seconds: float = 5.0) -> None:
        deadline = time.monotonic() + drain_seconds
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=drain_seconds)
        self._client.close()

    def deliver(self, records: list[AuditRecord]) -> None:
        for record in records:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.dropped += 1
                log.warning("audit http sink queue full; record seq %s not forwarded", record.seq)

    def _take_batch(self) -> list[AuditRecord]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            body = "".join(_line(r) for r in batch).encode("utf-8")
            backoff = 0.5
            while not self._stop.is_set():
                try:
                    response = self._client.post(self.url, content=body, headers=self._headers)
                    if response.status_code < 300:
                        self.delivered += len(batch)
                        break
                    log.warning("audit http sink got %s; retrying", response.status_code)
                except httpx.HTTPError as exc:
                    log.warning("audit http sink failed (%s); retrying", type(exc).__name__)
                self.failures += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
