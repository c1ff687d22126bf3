"""Tasks: the unit of authority an agent is given, with a purpose, limits, a deadline and a budget.

A task is opened by an admin for one agent. Tokens bound to it (``agent_task``
authorization details naming its id, RFC 9396) inherit its limits: they end no
later than its deadline, and their task resources and actions are a subset of
the task's. Closing the task, or its deadline passing, revokes every token
bound to it and every token exchanged from those (``tokens/revocation.py``).

Lifecycle::

    open ──close──► closed
    open ──deadline passes──► expired

A *call* is one authorization decision (AuthZEN evaluation) made for an access
token bound to the task. With a budget, each call consumes one unit, atomically
in the database so replicas share the count; once none is left, decisions for
the task are deny and no token is issued for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tessera.errors import ValidationFailed
from tessera.policy.context import TaskFacts
from tessera.tokens.authorization_details import ACTION, MAX_ITEMS, TASK_ID

MAX_TASK_SECONDS = 30 * 86400
MAX_BUDGET = 1_000_000_000


class TaskState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    agent_id: str
    purpose: str
    resources: tuple[str, ...]
    actions: tuple[str, ...]
    deadline: float
    budget: int | None
    used: int
    state: TaskState
    created_by: str
    created_at: float
    closed_at: float | None = None
    closed_reason: str | None = None

    def live_at(self, now: float) -> bool:
        return self.state is TaskState.OPEN and now < self.deadline

    def state_at(self, now: float) -> TaskState:
        """The state as of ``now``: an open task past its deadline is expired even before the sweep."""
        return TaskState.EXPIRED if self.state is TaskState.OPEN and now >= self.deadline else self.state

    @property
    def budget_remaining(self) -> int:
        return -1 if self.budget is None else max(self.budget - self.used, 0)

    def facts(self, budget_remaining: int | None = None) -> TaskFacts:
        return TaskFacts(
            id=self.id,
            purpose=self.purpose,
            resources=self.resources,
            actions=self.actions,
            deadline=int(self.deadline),
            budget_remaining=self.budget_remaining if budget_remaining is None else budget_remaining,
        )

    def as_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent_id": self.agent_id,
            "purpose": self.purpose,
            "resources": list(self.resources),
            "actions": list(self.actions),
            "deadline": self.deadline,
            "budget": self.budget,
            "used": self.used,
            "state": self.state.value,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "closed_at": self.closed_at,
            "closed_reason": self.closed_reason,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Task:
        return cls(
            id=str(data["id"]),
            agent_id=str(data["agent_id"]),
            purpose=str(data["purpose"]),
            resources=tuple(data.get("resources") or ()),
            actions=tuple(data.get("actions") or ()),
            deadline=float(data["deadline"]),
            budget=None if data.get("budget") is None else int(data["budget"]),
            used=int(data.get("used") or 0),
            state=TaskState(data["state"]),
            created_by=str(data.get("created_by", "")),
            created_at=float(data["created_at"]),
            closed_at=None if data.get("closed_at") is None else float(data["closed_at"]),
            closed_reason=data.get("closed_reason"),
        )


@dataclass(frozen=True, slots=True)
class NewTask:
    agent_id: str
    purpose: str
    #: Seconds from now until the deadline.
    expires_in: int
    resources: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    budget: int | None = None
    id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def validate_new_task(new: NewTask) -> NewTask:
    """Refuse malformed input with a one-line reason quoting it."""
    if new.id is not None and not TASK_ID.fullmatch(new.id):
        raise ValidationFailed(f"invalid task id '{new.id[:60]}': 1-128 characters [A-Za-z0-9._:/-]")
    purpose = new.purpose.strip()
    if not 1 <= len(purpose) <= 500 or any(ord(c) < 32 for c in purpose):
        raise ValidationFailed("a task needs a purpose of 1-500 printable characters")
    if not 1 <= new.expires_in <= MAX_TASK_SECONDS:
        raise ValidationFailed(f"expires_in must be 1-{MAX_TASK_SECONDS} seconds, not {new.expires_in}")
    if new.budget is not None and not 1 <= new.budget <= MAX_BUDGET:
        raise ValidationFailed(f"budget must be 1-{MAX_BUDGET} calls, not {new.budget}")
    for name, values in (("resources", new.resources), ("actions", new.actions)):
        if len(values) > MAX_ITEMS:
            raise ValidationFailed(f"a task has at most {MAX_ITEMS} {name}")
        for value in values:
            bad = not value or len(value) > 512 or any(c.isspace() for c in value)
            if bad or (name == "actions" and not ACTION.fullmatch(value)):
                raise ValidationFailed(f"invalid task {name[:-1]} '{value[:60]}'")
    return NewTask(
        agent_id=new.agent_id,
        purpose=purpose,
        expires_in=new.expires_in,
        resources=tuple(dict.fromkeys(new.resources)),
        actions=tuple(dict.fromkeys(new.actions)),
        budget=new.budget,
        id=new.id,
    )
