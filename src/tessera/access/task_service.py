"""Opening, closing and expiring tasks; binding tokens to them; counting their calls.

Writes go to the database with their audit record and a ``task`` change in one
transaction; every worker keeps the tasks in memory from the change feed, so a
decision reads no table (except to take one unit of a budget, see ``consume``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from tessera.access.tasks import NewTask, Task, TaskState, validate_new_task
from tessera.audit.service import Auditor, RequestContext, event, record_revocations
from tessera.clock import Clock
from tessera.errors import InvalidAuthorizationDetails, NotFound, ServiceUnavailable, ValidationFailed
from tessera.events.change_feed import Change, publish
from tessera.ids import IdGenerator
from tessera.policy.context import TaskFacts
from tessera.storage.agents import SqlAgentRepository
from tessera.storage.database import reading, writing
from tessera.storage.tasks import SqlTaskRepository
from tessera.tokens.authorization_details import AGENT_TASK
from tessera.tokens.issuer import TokenGrant
from tessera.tokens.revocation import RevocationState, revoke_tokens

log = logging.getLogger(__name__)
TASK_CHANGED = "task"
_SYSTEM = RequestContext()


@dataclass(frozen=True, slots=True)
class ClosedTask:
    task: Task
    revoked_tokens: int


class TaskService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        revocation: RevocationState,
        auditor: Auditor | None = None,
        *,
        require_registered: bool = False,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._revocation = revocation
        self._auditor = auditor
        self._repo = SqlTaskRepository()
        self._agents = SqlAgentRepository()
        self.require_registered = require_registered
        self._index: dict[str, Task] = {}
        self._lock = threading.Lock()

    # --- in-memory state ---------------------------------------------------------------

    def load(self) -> None:
        with reading(self._engine) as conn:
            live = self._repo.live(conn)
        with self._lock:
            self._index = {task.id: task for task in live}

    def on_change(self, change: Change) -> None:
        self._remember(Task.from_payload(change.payload))

    def _remember(self, task: Task) -> None:
        with self._lock:
            self._index[task.id] = task

    def cached(self, task_id: str) -> Task | None:
        return self._index.get(task_id)

    def find(self, task_id: str) -> Task | None:
        """The task, from memory, or from the database if this worker has not heard of it yet."""
        task = self._index.get(task_id)
        if task is not None:
            return task
        with reading(self._engine) as conn:
            task = self._repo.get(conn, task_id)
        if task is not None:
            self._remember(task)
        return task

    # --- admin operations --------------------------------------------------------------

    def open(self, new: NewTask, context: RequestContext = _SYSTEM) -> Task:
        new = validate_new_task(new)
        now = self._clock.now()
        task = Task(
            id=new.id or self._ids.new("task"),
            agent_id=new.agent_id,
            purpose=new.purpose,
            resources=new.resources,
            actions=new.actions,
            deadline=now + new.expires_in,
            budget=new.budget,
            used=0,
            state=TaskState.OPEN,
            created_by=context.actor.id or context.actor.type.value,
            created_at=now,
        )
        with writing(self._engine) as conn:
            if self._agents.get(conn, new.agent_id) is None:
                raise ValidationFailed(f"unknown agent '{new.agent_id[:64]}'")
            self._repo.add(conn, task)
            publish(conn, TASK_CHANGED, task.id, task.as_payload(), now)
            self._audit(conn, "task.opened", context, task, deadline=task.deadline, budget=task.budget)
        self._remember(task)
        return task

    def get(self, task_id: str) -> Task:
        with reading(self._engine) as conn:
            task = self._repo.get(conn, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id[:128]}'")
        return task

    def query(self, *, agent_id: str | None = None, state: TaskState | None = None) -> list[Task]:
        with reading(self._engine) as conn:
            return self._repo.query(conn, agent_id=agent_id, state=state)

    def close(self, task_id: str, reason: str | None = None, context: RequestContext = _SYSTEM) -> ClosedTask:
        """Close the task and revoke its tokens and every token delegated from them."""
        return self._finish(task_id, TaskState.CLOSED, reason or "task closed", context)

    def expire_due(self) -> int:
        """The maintenance sweep: open tasks past their deadline become expired; their tokens die."""
        now = self._clock.now()
        with reading(self._engine) as conn:
            due = self._repo.due(conn, now)
        for task_id in due:
            try:
                self._finish(task_id, TaskState.EXPIRED, "task deadline passed", _SYSTEM)
            except NotFound:
                continue
        return len(due)

    def _finish(self, task_id: str, state: TaskState, reason: str, context: RequestContext) -> ClosedTask:
        now = self._clock.now()
        try:
            with writing(self._engine) as conn:
                # Locked first: a token being recorded for this task either commits before
                # (and is revoked below) or waits and then sees the task closed.
                task = self._repo.get_for_update(conn, task_id)
                if task is None:
                    raise NotFound(f"no task '{task_id[:128]}'")
                if task.state is not TaskState.OPEN:
                    return ClosedTask(task, 0)
                self._repo.finish(conn, task_id, state, now, reason)
                task = replace(task, state=state, closed_at=now, closed_reason=reason[:500])
                revoked = revoke_tokens(conn, now=now, reason=f"task {state.value}", task_id=task_id)
                publish(conn, TASK_CHANGED, task_id, task.as_payload(), now)
                self._audit(conn, f"task.{state.value}", context, task, revoked_tokens=len(revoked))
                if self._auditor is not None:
                    record_revocations(
                        self._auditor,
                        conn,
                        context,
                        revoked,
                        agent_id=task.agent_id,
                        reason=f"task {state.value}",
                    )
        except SQLAlchemyError as exc:
            log.exception("closing task %s failed", task_id)
            raise ServiceUnavailable(
                f"task '{task_id[:128]}' could not be closed; its tokens are still live"
            ) from exc
        self._revocation.mark_revoked(revoked)
        self._remember(task)
        return ClosedTask(task, len(revoked))

    def _audit(
        self, conn: Connection, type_: str, context: RequestContext, task: Task, **data: object
    ) -> None:
        if self._auditor is None:
            return
        self._auditor.record_in(
            conn,
            event(
                type_,
                context,
                subject=task.agent_id,
                task_id=task.id,
                reason=task.closed_reason or context.reason,
                data={"purpose": task.purpose[:200], **data},
            ),
        )

    # --- tokens and decisions ----------------------------------------------------------

    def bind(self, grant: TokenGrant, *, delegated: bool = False) -> tuple[TokenGrant, TaskFacts | None]:
        """A token for a registered task inherits its limits (RFC 9396 ``agent_task``).

        ``delegated``: the subject token of an exchange already carried this task, so
        the actor may be another agent than the task's own.
        """
        detail = next((d for d in grant.authorization_details if d.get("type") == AGENT_TASK), None)
        if detail is None:
            return grant, None
        task_id = str(detail["task_id"])
        task = self.find(task_id)
        if task is None:
            if self.require_registered:
                raise InvalidAuthorizationDetails(f"task '{task_id[:128]}' is not registered")
            return grant, None
        now = self._clock.now()
        state = task.state_at(now)
        if state is not TaskState.OPEN:
            raise InvalidAuthorizationDetails(f"task '{task_id[:128]}' is {state.value}")
        if not delegated and task.agent_id != grant.agent.id:
            raise InvalidAuthorizationDetails(f"task '{task_id[:128]}' belongs to another agent")
        if task.budget is not None and task.budget_remaining <= 0:
            raise InvalidAuthorizationDetails(
                f"task '{task_id[:128]}' has used its budget of {task.budget} calls"
            )
        narrowed = {**detail, "purpose": task.purpose}
        for name, allowed in (("resources", task.resources), ("actions", task.actions)):
            asked = list(detail.get(name) or [])
            outside = [item for item in asked if allowed and item not in allowed]
            if outside:
                raise InvalidAuthorizationDetails(
                    f"task '{task_id[:128]}' does not include {name[:-1]} '{outside[0][:60]}'"
                )
            narrowed[name] = asked or list(allowed)
        ttl = min(grant.ttl, int(task.deadline - now))
        if ttl < 1:
            raise InvalidAuthorizationDetails(f"task '{task_id[:128]}' is expired")
        details = tuple(narrowed if d is detail else d for d in grant.authorization_details)
        return replace(grant, authorization_details=details, ttl=ttl, task_registered=True), task.facts()

    def check_call(self, task_id: str) -> TaskFacts | str | None:
        """For a decision on a token bound to ``task_id``: its facts, a refusal, or ``None`` if unregistered.

        A task with a budget loses one call here (atomically, shared by every replica).
        """
        task = self._index.get(task_id)
        if task is None:
            return None
        now = self._clock.now()
        state = task.state_at(now)
        if state is not TaskState.OPEN:
            return f"task '{task_id[:128]}' is {state.value}"
        if task.budget is None:
            return task.facts()
        try:
            with writing(self._engine) as conn:
                remaining = self._repo.consume(conn, task_id, now)
        except SQLAlchemyError:
            log.exception("task budget could not be counted; denied")
            return f"task '{task_id[:128]}' budget could not be counted"
        if remaining is None:
            self._remember(replace(task, used=task.budget))
            return f"task '{task_id[:128]}' has used its budget of {task.budget} calls"
        self._remember(replace(task, used=task.budget - remaining))
        return task.facts(budget_remaining=remaining)
