"""How the group-commit writer closes a batch: at ``max_delay``, or once it is as large as the last one.

Waiting the whole delay on every batch idled the writer between commits; these
cases use a long delay so that any wait it should not make would show.
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

LONG_DELAY = 1.5


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
    began = time.monotonic()
    for n in range(4):
        writer.record(sample_event(n))
    # Four waits of the full delay would take 6 s; none is needed with nothing else queued.
    assert time.monotonic() - began < LONG_DELAY
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
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - began
    assert sum(writer.batches) == callers * rounds
    # Batched, not one transaction per record...
    assert len(writer.batches) < callers * rounds
    # ...and a batch as large as the last closes without idling the whole delay each round.
    assert elapsed < rounds * LONG_DELAY
    assert verify(runtime).ok


def test_a_batch_smaller_than_the_last_waits_for_company(runtime: Runtime, writer: Recording) -> None:
    """After a batch of three, a lone record waits (up to the delay) for more."""
    with audit_head_locked(runtime.engine):
        futures = [writer.submit(sample_event(0))]
        time.sleep(0.2)  # the writer took record 0 and waits for the lock...
        futures += [writer.submit(sample_event(n)) for n in range(1, 4)]  # ...while three more queue
        time.sleep(0.2)
    for future in futures:
        future.result(timeout=30)
    assert writer.batches == [1, 3]
    first = writer.submit(sample_event(4))
    time.sleep(0.2)  # well inside the delay: the writer holds record 4 and waits for more
    second = writer.submit(sample_event(5))
    assert first.result(timeout=30).seq + 1 == second.result(timeout=30).seq
    assert writer.batches == [1, 3, 2]
    assert verify(runtime).ok
