"""How the group-commit writer closes a batch: at ``max_delay``, or once it is as large as the last one.

Waiting the whole delay on every batch idled the writer between commits. These
cases check the batches the writer forms, never how long anything took (the
machines are noisy); the long delay only gives the writer room to wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tessera.audit.records import AuditEvent, AuditRecord
from tessera.audit.writer import AuditWriter
from tessera.ids import RandomIds
from tessera.runtime import Runtime
from tessera.storage.database import writing
from tests.unit.audit.helpers import sample_event, verify

LONG_DELAY = 5.0


def taken(writer: AuditWriter) -> None:
    """Wait (bounded) until the writer thread has taken everything queued so far."""
    deadline = time.monotonic() + 30
    while not writer._queue.empty():  # the test observes the writer's queue
        assert time.monotonic() < deadline, "the writer never took the queued record"
        time.sleep(0.01)


@contextmanager
def audit_head_locked(engine: Engine) -> Iterator[None]:
    """Hold the chain's write lock from another connection, as a slow writer elsewhere would."""
    with writing(engine) as conn:  # BEGIN IMMEDIATE on SQLite
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"))
        yield


class Recording(AuditWriter):
    """The writer, noting the size of each batch it commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def _commit(self, batch: list[tuple[AuditEvent, Future[AuditRecord]]]) -> list[AuditRecord]:
        self.batches.append(len(batch))
        return super()._commit(batch)


@pytest.fixture
def writer(runtime: Runtime) -> Iterator[Recording]:
    started = Recording(
        runtime.engine,
        runtime.clock,
        RandomIds(),
        issuer=runtime.issuer,
        signer=lambda: None,
        max_delay=LONG_DELAY,
        ack_timeout=30,
    )
    started.start()
    yield started
    started.stop()


def test_a_lone_caller_is_written_at_once(runtime: Runtime, writer: Recording) -> None:
    for n in range(4):
        writer.record(sample_event(n))
    assert writer.batches == [1, 1, 1, 1]
    assert verify(runtime).ok


def test_callers_who_come_back_together_are_written_together(runtime: Runtime, writer: Recording) -> None:
    callers, rounds = 6, 4
    barrier = threading.Barrier(callers)

    def work(n: int) -> None:
        for r in range(rounds):
            barrier.wait()
            writer.record(sample_event(n * rounds + r))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(writer.batches) == callers * rounds
    # Batched, not one transaction per record.
    assert len(writer.batches) < callers * rounds
    assert verify(runtime).ok


def test_a_batch_smaller_than_the_last_waits_for_company(runtime: Runtime, writer: Recording) -> None:
    """After a batch of three, a lone record waits (up to the delay) for more."""
    with audit_head_locked(runtime.engine):
        futures = [writer.submit(sample_event(0))]
        taken(writer)  # the writer took record 0 and waits for the lock...
        futures += [writer.submit(sample_event(n)) for n in range(1, 4)]  # ...while three more queue
    for future in futures:
        future.result(timeout=30)
    assert writer.batches == [1, 3]
    first = writer.submit(sample_event(4))
    taken(writer)  # the writer holds record 4 and, its last batch being larger, waits for more
    second = writer.submit(sample_event(5))
    assert first.result(timeout=30).seq + 1 == second.result(timeout=30).seq
    assert writer.batches == [1, 3, 2]
    assert verify(runtime).ok
