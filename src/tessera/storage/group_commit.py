"""Group commit: small write transactions from many threads share one commit (one fsync).

``GroupCommit.run(work)`` queues ``work`` and blocks until its outcome is durable.
The first waiting thread becomes the leader: it takes every queued unit, runs
each in its own savepoint (so one unit's failure undoes only its own writes and
is raised to its own caller), commits once, and wakes the others. Units that
arrive meanwhile form the next batch, so there is no added delay: a lone request
commits alone, and concurrent ones pay one commit between them.

Nothing is acknowledged before the commit: if it fails, every unit in the batch
fails. If a batch of several fails on a database error (a PostgreSQL deadlock
between two replicas' batches, say), each of its units is retried alone, so one
unit cannot fail the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from tessera.storage.database import writing

T = TypeVar("T")


class _Unit(Generic[T]):
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._changed = threading.Condition()
        self._pending: list[_Unit[object]] = []
        self._leading = False

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a write transaction; return its result once committed."""
        unit: _Unit[T] = _Unit(work)
        with self._changed:
            self._pending.append(unit)  # type: ignore[arg-type]
            while not unit.done and self._leading:
                self._changed.wait()
            batch: list[_Unit[object]] = []
            if not unit.done:
                self._leading = True
                batch, self._pending = self._pending, []
        if batch:
            try:
                self._commit(batch)
            finally:
                with self._changed:
                    for item in batch:
                        item.done = True
                    self._leading = False
                    self._changed.notify_all()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Unit[object]]) -> None:
        if len(batch) == 1:
            self._commit_alone(batch[0])
            return
        try:
            with writing(self._engine) as conn:
                for index, unit in enumerate(batch):
                    savepoint = f"unit_{index}"
                    conn.exec_driver_sql(f"SAVEPOINT {savepoint}")
                    try:
                        unit.result = unit.work(conn)
                    except Exception as exc:
                        conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
                        unit.error = exc
                    conn.exec_driver_sql(f"RELEASE SAVEPOINT {savepoint}")
        except SQLAlchemyError:
            for unit in batch:
                unit.result, unit.error = None, None
                self._commit_alone(unit)
        except BaseException as exc:
            for unit in batch:
                unit.result, unit.error = None, exc
            raise

    def _commit_alone(self, unit: _Unit[object]) -> None:
        try:
            with writing(self._engine) as conn:
                unit.result = unit.work(conn)
        except Exception as exc:
            unit.result, unit.error = None, exc
