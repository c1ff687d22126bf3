"""Tasks (``/admin/v1/tasks``): open, list, show, close.

Only the admin opens and closes tasks: a task widens nothing by itself, but it is
the authority an agent's tokens are bound to, so (as with Vault roles or Keycloak
clients) it is granted by whoever administers the agent, not by the agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from tessera.access.tasks import MAX_BUDGET, MAX_TASK_SECONDS, NewTask, Task, TaskState
from tessera.errors import ValidationFailed
from tessera.server.admin import Admin
from tessera.server.schemas import Reason, Strict, epoch, iso

router = APIRouter(prefix="/admin/v1")


class TaskOpen(Strict):
    agent_id: str = Field(min_length=1, max_length=64)
    purpose: str = Field(min_length=1, max_length=500)
    expires_in: int | None = Field(default=None, ge=1, le=MAX_TASK_SECONDS)
    deadline: datetime | None = None
    resources: list[str] = Field(default_factory=list, max_length=32)
    actions: list[str] = Field(default_factory=list, max_length=32)
    budget: int | None = Field(default=None, ge=1, le=MAX_BUDGET)
    id: str | None = Field(default=None, max_length=128)


def task_view(task: Task, now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "agent_id": task.agent_id,
        "purpose": task.purpose,
        "resources": list(task.resources),
        "actions": list(task.actions),
        "deadline": iso(task.deadline),
        "budget": task.budget,
        "used": task.used,
        "budget_remaining": task.budget_remaining,
        "state": task.state_at(now).value,
        "created_by": task.created_by,
        "created_at": iso(task.created_at),
        "closed_at": iso(task.closed_at),
        "closed_reason": task.closed_reason,
    }


@router.post("/tasks", status_code=201)
def open_task(body: TaskOpen, call: Admin) -> dict[str, Any]:
    now = call.runtime.clock.now()
    if (body.expires_in is None) == (body.deadline is None):
        raise ValidationFailed("give exactly one of expires_in and deadline")
    expires_in = body.expires_in or int((epoch(body.deadline) or now) - now)
    if expires_in < 1:
        raise ValidationFailed(f"deadline '{body.deadline}' is not in the future")
    new = NewTask(
        agent_id=body.agent_id,
        purpose=body.purpose,
        expires_in=expires_in,
        resources=tuple(body.resources),
        actions=tuple(body.actions),
        budget=body.budget,
        id=body.id,
    )
    return task_view(call.runtime.tasks.open(new, call.context), now)


@router.get("/tasks")
def list_tasks(
    call: Admin,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    wanted: TaskState | None = None
    if state is not None:
        try:
            wanted = TaskState(state)
        except ValueError:
            raise ValidationFailed(f"unknown task state '{state}': open, closed or expired") from None
    now = call.runtime.clock.now()
    tasks = call.runtime.tasks.query(agent_id=agent, state=wanted)
    return {"tasks": [task_view(t, now) for t in tasks]}


@router.get("/tasks/{task_id:path}")
def show_task(task_id: str, call: Admin) -> dict[str, Any]:
    return task_view(call.runtime.tasks.get(task_id), call.runtime.clock.now())


@router.post("/tasks/{task_id:path}/close")
def close_task(task_id: str, call: Admin, body: Reason | None = None) -> dict[str, Any]:
    closed = call.runtime.tasks.close(task_id, body.reason if body else None, call.context)
    return {**task_view(closed.task, call.runtime.clock.now()), "revoked_tokens": closed.revoked_tokens}
