"""SQL storage of tasks (``tessera.access.tasks``).

Contract: ``add`` refuses a duplicate id with ``Conflict``; ``get_for_update`` locks
the row (PostgreSQL ``FOR UPDATE``; SQLite serialises writers) so closing a task
and recording a token for it are ordered; ``consume`` takes one unit of budget
atomically and answers how many are left, or ``None`` if none was left (or the
task is not open).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.access.tasks import Task, TaskState
from tessera.errors import Conflict
from tessera.storage.tables import tasks

_GET = select(tasks).where(tasks.c.id == bindparam("task_id"))
_CONSUME = (
    update(tasks)
    .where(
        tasks.c.id == bindparam("task_id"),
        tasks.c.state == TaskState.OPEN.value,
        tasks.c.deadline > bindparam("now"),
        tasks.c.budget.is_not(None),
        tasks.c.used < tasks.c.budget,
    )
    .values(used=tasks.c.used + 1)
    .returning(tasks.c.budget, tasks.c.used)
)


def task_from_row(row: Any) -> Task:
    return Task(
        id=row.id,
        agent_id=row.agent_id,
        purpose=row.purpose,
        resources=tuple(row.resources),
        actions=tuple(row.actions),
        deadline=row.deadline,
        budget=row.budget,
        used=row.used,
        state=TaskState(row.state),
        created_by=row.created_by,
        created_at=row.created_at,
        closed_at=row.closed_at,
        closed_reason=row.closed_reason,
    )


class SqlTaskRepository:
    def add(self, conn: Connection, task: Task) -> None:
        row = task.as_payload()
        try:
            with conn.begin_nested():
                conn.execute(insert(tasks).values(**row))
        except IntegrityError as exc:
            raise Conflict(f"task '{task.id}' already exists") from exc

    def get(self, conn: Connection, task_id: str) -> Task | None:
        row = conn.execute(_GET, {"task_id": task_id}).first()
        return task_from_row(row) if row is not None else None

    def get_for_update(self, conn: Connection, task_id: str, *, share: bool = False) -> Task | None:
        row = conn.execute(_GET.with_for_update(read=share), {"task_id": task_id}).first()
        return task_from_row(row) if row is not None else None

    def query(
        self,
        conn: Connection,
        *,
        agent_id: str | None = None,
        state: TaskState | None = None,
        limit: int = 1000,
    ) -> list[Task]:
        query = select(tasks)
        if agent_id is not None:
            query = query.where(tasks.c.agent_id == agent_id)
        if state is not None:
            query = query.where(tasks.c.state == state.value)
        rows = conn.execute(query.order_by(tasks.c.created_at, tasks.c.id).limit(limit))
        return [task_from_row(row) for row in rows]

    def live(self, conn: Connection) -> list[Task]:
        return [task_from_row(row) for row in conn.execute(select(tasks).where(tasks.c.state == "open"))]

    def due(self, conn: Connection, now: float) -> list[str]:
        rows = conn.execute(
            select(tasks.c.id).where(tasks.c.state == TaskState.OPEN.value, tasks.c.deadline <= now)
        )
        return [row.id for row in rows]

    def finish(self, conn: Connection, task_id: str, state: TaskState, now: float, reason: str) -> bool:
        result = conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.state == TaskState.OPEN.value)
            .values(state=state.value, closed_at=now, closed_reason=reason[:500])
        )
        return bool(result.rowcount)

    def consume(self, conn: Connection, task_id: str, now: float) -> int | None:
        row = conn.execute(_CONSUME, {"task_id": task_id, "now": now}).first()
        return None if row is None else int(row.budget) - int(row.used)
