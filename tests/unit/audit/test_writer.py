"""The group-commit writer: batches concurrent appends, acknowledges only what is committed, one chain."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from tessera.audit.records import AuditRecord
from tessera.audit.writer import AuditUnavailable, AuditWriter
from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.identity.service import NewAgent
from tessera.ids import RandomIds
from tessera.runtime import Runtime
from tessera.storage.database import writing
from tests.unit.audit.helpers import rows, sample_event, verify

THREADS = 32


@contextmanager
def audit_head_locked(engine: Engine) -> Iterator[None]:
    """Hold the chain's write lock from another connection, as a slow writer elsewhere would."""
    with writing(engine) as conn:  # BEGIN IMMEDIATE on SQLite
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"))
        yield


@contextmanager
def counting_commits(engine: Engine) -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


@pytest.fixture
def writer_thread(runtime: Runtime) -> Iterator[AuditWriter]:
    runtime.audit_writer.start()
    yield runtime.audit_writer
    runtime.audit_writer.stop()


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)

    def run(n: int) -> Any:
        barrier.wait()
        return work(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_records_are_batched_and_each_caller_gets_its_own(
    runtime: Runtime, engine: Engine, writer_thread: AuditWriter
) -> None:
    start_seq = rows(engine)[-1]["seq"]
    seen_durable: list[bool] = []

    def work(n: int) -> AuditRecord:
        record = runtime.auditor.record(sample_event(n))
        # Acknowledged means committed: another connection sees it at once.
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT hash FROM audit_records WHERE id = :i"), {"i": record.id}
            ).scalar()
        seen_durable.append(found == record.hash)
        return record

    with counting_commits(runtime.engine) as commits:
        results: list[AuditRecord] = []
        with audit_head_locked(engine):
            worker = threading.Thread(target=lambda: results.extend(in_threads(THREADS, work)))
            worker.start()
            time.sleep(0.3)  # let the callers queue up behind the held lock (not an assertion)
        worker.join()
    assert len(results) == THREADS
    assert [r.data["n"] for r in results] == list(range(THREADS)), "each caller got its own record"
    assert sorted(r.seq for r in results) == list(range(start_seq + 1, start_seq + THREADS + 1))
    assert all(seen_durable)
    assert 0 < len(commits) < THREADS, f"{len(commits)} transactions for {THREADS} records"
    stored = {r["id"]: r["hash"] for r in rows(engine)}
    assert all(stored.get(r.id) == r.hash for r in results), "an acknowledged record is missing"
    assert verify(runtime).ok


def test_a_batch_links_in_order(runtime: Runtime, writer_thread: AuditWriter) -> None:
    futures = [writer_thread.submit(sample_event(n)) for n in range(50)]
    records = [f.result(timeout=30) for f in futures]
    for before, after in itertools.pairwise(records):
        assert after.seq == before.seq + 1
        assert after.prev_hash == before.hash
    assert verify(runtime).ok


def test_stopping_the_writer_settles_everything_queued(runtime: Runtime, engine: Engine) -> None:
    runtime.audit_writer.start()
    with audit_head_locked(engine):
        futures = [runtime.audit_writer.submit(sample_event(n)) for n in range(20)]
        stopper = threading.Thread(target=runtime.audit_writer.stop)
        stopper.start()
    stopper.join()
    assert all(f.result(timeout=0).seq > 0 for f in futures)
    # Stopped: it writes synchronously again, same guarantees.
    assert runtime.auditor.record(sample_event(99)).seq == futures[-1].result().seq + 1


def test_a_stalled_store_is_refused_after_the_ack_timeout(runtime: Runtime, engine: Engine) -> None:
    writer = AuditWriter(
        runtime.engine,
        runtime.clock,
        RandomIds(),
        issuer=runtime.issuer,
        signer=lambda: None,
        ack_timeout=0.2,
    )
    writer.start()
    try:
        with audit_head_locked(engine), pytest.raises(AuditUnavailable, match="in time"):
            writer.record(sample_event(1))
    finally:
        writer.stop()
    # Refused to its caller, then committed once the lock went: recorded too often, never too little.
    assert verify(runtime).ok


def test_a_failed_synchronous_append_refuses_the_caller(runtime: Runtime, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
    future = runtime.audit_writer.submit(sample_event(1))
    with pytest.raises(AuditUnavailable):
        future.result(timeout=0)


@pytest.fixture
def second_runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """Another replica: its own engine and writer on the same database, same home (keys)."""
    other = Runtime(settings, clock=clock)
    other.start(background=False)
    yield other
    other.stop()


def test_two_replicas_writing_concurrently_extend_one_chain(
    runtime: Runtime, second_runtime: Runtime, engine: Engine
) -> None:
    replicas = (runtime, second_runtime)
    for replica in replicas:
        replica.audit_writer.start()
    try:

        def work(n: int) -> list[str]:
            replica = replicas[n % 2]
            ids = [replica.auditor.record(sample_event(n * 100 + i)).id for i in range(10)]
            if n % 4 == 0:  # admin changes record in their own transaction, interleaved with batches
                agent = replica.agents.create(NewAgent(name=f"a{n}", owner="o@example.com", scopes=("s",)))
                ids.append(agent.id)
            if n % 8 == 1:
                replica.audit_writer.checkpoint()
            return ids

        acknowledged = [i for ids in in_threads(16, work) for i in ids]
    finally:
        for replica in replicas:
            replica.audit_writer.stop()
    stored = rows(engine)
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
    audit_ids = {r["id"] for r in stored}
    subjects = {r["subject"] for r in stored if r["type"] == "agent.created"}
    assert all(i in audit_ids or i in subjects for i in acknowledged)
    assert len(stored) >= len(acknowledged)
    for replica in replicas:
        report = verify(replica)
        assert report.ok, report.problem
        assert report.records == len(stored)
