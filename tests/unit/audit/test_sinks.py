"""Forwarding: a size-rotated JSON Lines file, and an HTTP sink that retries and never blocks the log."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tessera.audit.forwarder import AuditForwarder
from tessera.audit.records import GENESIS_HASH, AuditRecord, build_record
from tessera.audit.sinks import HttpSink, JsonlFileSink
from tessera.runtime import Runtime
from tests.unit.audit.helpers import fill, rows, sample_event, verify

BOUND = 30.0  # seconds a delivery may take before the test gives up; a bound, not a timing assertion


def records(count: int) -> list[AuditRecord]:
    out, prev = [], GENESIS_HASH
    for n in range(1, count + 1):
        record = build_record(
            sample_event(n), seq=n, record_id=f"aud_{n}", ts_ms=1_800_000_000_000, prev_hash=prev
        )
        out.append(record)
        prev = record.hash
    return out


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


# --- JSON Lines file ----------------------------------------------------------------------------


def test_the_file_sink_writes_one_verifiable_record_per_line(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "siem" / "audit.jsonl")
    batch = records(5)
    sink.deliver(batch[:2])
    sink.deliver(batch[2:])
    lines = read_jsonl(sink.path)
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    for line, record in zip(lines, batch, strict=True):
        assert line["hash"] == record.hash
        assert line["time"] == "2027-01-15T08:00:00.000Z"
        body = {k: v for k, v in line.items() if k not in ("hash", "time")}
        assert AuditRecord.from_body(body, str(line["hash"])).compute_hash() == record.hash
    assert sink.path.stat().st_mode & 0o777 == 0o600


def test_the_file_sink_rotates_by_size_keeping_n_backups(tmp_path: Path) -> None:
    batch = records(60)
    size = len(json.dumps(batch[0].as_dict())) + 1
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=size * 5, backups=3)
    for record in batch:
        sink.deliver([record])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    files = [sink.path.with_name(f"audit.jsonl.{i}") for i in (3, 2, 1)] + [sink.path]
    for path in files:
        assert path.stat().st_size <= size * 5 + 10
    seqs = [line["seq"] for path in files for line in read_jsonl(path)]
    assert seqs == list(range(seqs[0], 61)), "oldest in .3, newest in the base file, nothing lost between"
    assert read_jsonl(sink.path)[-1]["seq"] == 60


def test_the_file_sink_without_backups_starts_over(tmp_path: Path) -> None:
    batch = records(12)
    size = len(json.dumps(batch[0].as_dict())) + 1
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=size * 5, backups=0)
    for record in batch:
        sink.deliver([record])
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]
    assert read_jsonl(sink.path)[-1]["seq"] == 12


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Collector:
    """A SIEM endpoint on loopback: answers with ``statuses`` in turn (then 200) and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    posts: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for _t, _h, body in self.posts for line in body.decode().splitlines()]


@pytest.fixture
def collector() -> Iterator[Collector]:
    state = Collector()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                status = state.statuses.pop(0) if state.statuses else 200
                state.posts.append((time.monotonic(), dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/ingest"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_http_sink_delivers_batches_in_order(collector: Collector) -> None:
    sink = HttpSink(collector.url, headers={"Authorization": "Bearer siem-token"}, batch_size=10)
    sink.start()
    try:
        sink.deliver(records(25))
        wait_for(lambda: sink.delivered == 25, "25 records delivered")
    finally:
        sink.stop()
    assert [line["seq"] for line in collector.lines()] == list(range(1, 26))
    assert all(len(body.splitlines()) <= 10 for _t, _h, body in collector.posts)
    headers = collector.posts[0][1]
    assert headers["Content-Type"] == "application/x-ndjson"
    assert headers["Authorization"] == "Bearer siem-token"
    assert (sink.failures, sink.dropped) == (0, 0)


def test_the_http_sink_retries_with_backoff_after_server_errors(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    collector.statuses = [500, 503]
    sink = HttpSink(collector.url, batch_size=100)
    sink.start()
    try:
        with caplog.at_level(logging.WARNING, logger="tessera.audit.sinks"):
            sink.deliver(records(3))
            wait_for(lambda: sink.delivered == 3, "delivery after two failures")
    finally:
        sink.stop()
    assert sink.failures == 2
    assert len(collector.posts) == 3
    assert len({body for _t, _h, body in collector.posts}) == 1, "the same batch, resent"
    assert [line["seq"] for line in collector.lines()[-3:]] == [1, 2, 3]
    first, second, third = (t for t, _h, _b in collector.posts)
    # Lower bounds only: the sink waited, and waited longer the second time.
    assert second - first >= 0.45
    assert third - second >= 0.95
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


def test_an_unreachable_endpoint_never_raises_into_the_writer(tmp_path: Path) -> None:
    sink = HttpSink("http://127.0.0.1:9/ingest", max_backoff=0.5)
    sink.start()
    try:
        sink.deliver(records(2))
        wait_for(lambda: sink.failures >= 1, "a failed attempt")
    finally:
        sink.stop(drain_seconds=0.5)
    assert sink.delivered == 0


def test_a_full_forwarding_queue_drops_there_not_from_the_log(runtime: Runtime) -> None:
    sink = HttpSink("http://127.0.0.1:9/ingest", max_queue=3)  # never started: nothing drains it
    forwarder = AuditForwarder(runtime.engine, [sink])
    forwarder.sync_position()
    written = fill(runtime, 10)
    assert forwarder.forward_once() == 10
    assert [r.seq for r in written] == list(range(written[0].seq, written[0].seq + 10))
    assert sink.dropped == 7
    stored = {r["id"] for r in rows(runtime.engine)}
    assert all(r.id in stored for r in written)
    assert verify(runtime).ok


def test_a_failing_sink_does_not_affect_the_log(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def deliver(self, records: list[AuditRecord]) -> None:
            raise OSError("disk full")

    forwarder = AuditForwarder(runtime.engine, [Broken()])
    forwarder.sync_position()
    with caplog.at_level(logging.ERROR, logger="tessera.audit.forwarder"):
        written = fill(runtime, 3)
        forwarder.forward_once()
    assert len(written) == 3
    assert any("primary log is unaffected" in r.getMessage() for r in caplog.records)
    assert verify(runtime).ok


def test_the_forwarder_sends_committed_records_in_chain_order(runtime: Runtime, tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "forward.jsonl")
    forwarder = AuditForwarder(runtime.engine, [sink])
    forwarder.sync_position()
    written = fill(runtime, 4)
    forwarder.forward_once()
    assert [line["id"] for line in read_jsonl(sink.path)] == [r.id for r in written]
