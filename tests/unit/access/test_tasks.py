"""Tasks: open, close, deadline, budget; tokens bound to a task inherit its limits (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tessera.access.tasks import NewTask, TaskState
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import Conflict, InvalidAuthorizationDetails, NotFound, ValidationFailed
from tessera.policy.authzen import token_facts
from tessera.policy.decisions import Question
from tessera.policy.entities import Uid
from tessera.runtime import Runtime
from tessera.storage.database import writing
from tessera.storage.tables import issued_tokens
from tessera.storage.tasks import SqlTaskRepository
from tessera.tokens.introspection import Caller
from tests.unit.helpers import Client, register, request_token, unverified_claims
from tests.unit.policy.helpers import audit_records
from tests.unit.tokens.exchange_helpers import exchange


@pytest.fixture
def agent(runtime: Runtime) -> Client:
    return register(runtime)


def task_details(task_id: str, **extra: object) -> str:
    return json.dumps([{"type": "agent_task", "task_id": task_id, "purpose": "anything", **extra}])


def open_task(runtime: Runtime, agent: Client, **fields: object) -> str:
    values: dict[str, object] = {"agent_id": agent.id, "purpose": "reconcile invoices", "expires_in": 600}
    values.update(fields)
    return runtime.tasks.open(NewTask(**values)).id  # type: ignore[arg-type]


def active(runtime: Runtime, token: str) -> bool:
    return bool(runtime.introspector.introspect(token, Caller(admin=True))[0]["active"])


def test_open_show_list_close(runtime: Runtime, agent: Client) -> None:
    task_id = open_task(runtime, agent, resources=("invoices/1",), actions=("read",), budget=5)
    task = runtime.tasks.get(task_id)
    assert task.state is TaskState.OPEN
    assert task.deadline == runtime.clock.now() + 600
    assert (task.resources, task.actions, task.budget, task.used) == (("invoices/1",), ("read",), 5, 0)
    assert [t.id for t in runtime.tasks.query(agent_id=agent.id)] == [task_id]
    closed = runtime.tasks.close(task_id, "done")
    assert closed.task.state is TaskState.CLOSED
    assert runtime.tasks.get(task_id).closed_reason == "done"
    assert runtime.tasks.query(state=TaskState.OPEN) == []
    assert runtime.tasks.close(task_id).revoked_tokens == 0  # closing twice changes nothing
    types = [r["type"] for r in audit_records(runtime.engine) if r["type"].startswith("task.")]
    assert types == ["task.opened", "task.closed"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"purpose": " "}, "a task needs a purpose of 1-500 printable characters"),
        ({"expires_in": 0}, "expires_in must be 1-2592000 seconds, not 0"),
        ({"budget": 0}, "budget must be 1-1000000000 calls, not 0"),
        ({"id": "bad id"}, "invalid task id 'bad id': 1-128 characters [A-Za-z0-9._:/-]"),
        ({"actions": ("rm -rf",)}, "invalid task action 'rm -rf'"),
        ({"agent_id": "agt_nobody"}, "unknown agent 'agt_nobody'"),
    ],
)
def test_malformed_tasks_are_refused(
    runtime: Runtime, agent: Client, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        open_task(runtime, agent, **fields)
    assert refused.value.description == message


def test_duplicate_and_unknown_ids(runtime: Runtime, agent: Client) -> None:
    open_task(runtime, agent, id="T-1")
    with pytest.raises(Conflict):
        open_task(runtime, agent, id="T-1")
    with pytest.raises(NotFound):
        runtime.tasks.close("T-404")


def test_a_token_for_a_task_inherits_its_limits(runtime: Runtime, agent: Client) -> None:
    task_id = open_task(
        runtime, agent, expires_in=90, resources=("invoices/1", "invoices/2"), actions=("read",)
    )
    issued = request_token(runtime, agent, authorization_details=task_details(task_id), expires_in="3600")
    claims = unverified_claims(issued.access_token)
    assert claims["exp"] - claims["iat"] == 90
    assert claims["authorization_details"] == [
        {
            "type": "agent_task",
            "task_id": task_id,
            "purpose": "reconcile invoices",
            "resources": ["invoices/1", "invoices/2"],
            "actions": ["read"],
        }
    ]
    narrowed = request_token(
        runtime, agent, authorization_details=task_details(task_id, resources=["invoices/2"])
    )
    assert unverified_claims(narrowed.access_token)["authorization_details"][0]["resources"] == ["invoices/2"]
    for wider in ({"resources": ["invoices/9"]}, {"actions": ["write"]}):
        with pytest.raises(InvalidAuthorizationDetails) as refused:
            request_token(runtime, agent, authorization_details=task_details(task_id, **wider))
        assert "does not include" in refused.value.description


def test_closed_expired_and_foreign_tasks_get_no_tokens(
    runtime: Runtime, clock: ManualClock, agent: Client
) -> None:
    other = register(runtime)
    foreign = open_task(runtime, other)
    closed = open_task(runtime, agent)
    runtime.tasks.close(closed)
    expiring = open_task(runtime, agent, expires_in=30)
    clock.advance(31)
    for task_id, message in (
        (foreign, f"task '{foreign}' belongs to another agent"),
        (closed, f"task '{closed}' is closed"),
        (expiring, f"task '{expiring}' is expired"),
    ):
        with pytest.raises(InvalidAuthorizationDetails) as refused:
            request_token(runtime, agent, authorization_details=task_details(task_id))
        assert refused.value.description == message


def test_unregistered_task_ids_are_labels_unless_registration_is_required(
    runtime: Runtime, agent: Client
) -> None:
    assert request_token(runtime, agent, authorization_details=task_details("ad-hoc")).task_id == "ad-hoc"
    runtime.tasks.require_registered = True
    with pytest.raises(InvalidAuthorizationDetails) as refused:
        request_token(runtime, agent, authorization_details=task_details("ad-hoc"))
    assert refused.value.description == "task 'ad-hoc' is not registered"


def test_closing_a_task_revokes_its_tokens_and_their_delegates(runtime: Runtime, agent: Client) -> None:
    helper = register(runtime)
    task_id = open_task(runtime, agent)
    own = request_token(runtime, agent, authorization_details=task_details(task_id))
    delegated = exchange(runtime, helper, own.access_token)
    assert unverified_claims(delegated.access_token)["authorization_details"][0]["task_id"] == task_id
    unrelated = request_token(runtime, agent)
    closed = runtime.tasks.close(task_id, "finished", RequestContext())
    assert closed.revoked_tokens == 2
    assert not active(runtime, own.access_token)
    assert not active(runtime, delegated.access_token)
    assert active(runtime, unrelated.access_token)


def test_a_sub_agent_cannot_claim_a_task_it_was_not_delegated(runtime: Runtime, agent: Client) -> None:
    helper = register(runtime)
    task_id = open_task(runtime, agent)
    plain = request_token(runtime, agent)
    with pytest.raises(InvalidAuthorizationDetails) as refused:
        exchange(runtime, helper, plain.access_token, authorization_details=task_details(task_id))
    assert refused.value.description == f"task '{task_id}' belongs to another agent"


def test_the_deadline_sweep_expires_the_task_and_revokes_its_tokens(
    runtime: Runtime, clock: ManualClock, agent: Client
) -> None:
    task_id = open_task(runtime, agent, expires_in=120)
    token = request_token(runtime, agent, authorization_details=task_details(task_id))
    clock.advance(121)
    assert runtime.tasks.expire_due() == 1
    assert runtime.tasks.get(task_id).state is TaskState.EXPIRED
    with runtime.engine.connect() as conn:
        revoked_at = conn.execute(
            select(issued_tokens.c.revoked_at).where(issued_tokens.c.jti == token.jti)
        ).scalar_one()
    assert revoked_at is not None
    assert runtime.tasks.expire_due() == 0


def question_for(runtime: Runtime, agent: Client, token: str) -> Question:
    verified = runtime.validator.verify(token)
    facts, resources = token_facts(verified)
    return Question(
        Uid("Agent", agent.id),
        "read",
        Uid("Resource", "invoices/1"),
        {"task_resources": resources},
        {},
        facts,
    )


def test_policy_sees_the_task_and_the_budget_runs_out(runtime: Runtime, agent: Client) -> None:
    task_id = open_task(runtime, agent, resources=("invoices/1",), actions=("read",), budget=2)
    token = request_token(runtime, agent, authorization_details=task_details(task_id)).access_token
    question = question_for(runtime, agent, token)
    request = runtime.decisions.request_for(runtime.decisions._with_task(question)[0])
    assert request.context["task"]["id"] == task_id
    assert request.context["task"]["budget_remaining"] == 1  # this call took one
    assert request.context["task"]["resources"] == ["invoices/1"]
    runtime.decisions.decide([question], RequestContext())
    denied = runtime.decisions.decide([question], RequestContext())[0]
    assert not denied.allowed
    assert denied.errors == (f"task '{task_id}' has used its budget of 2 calls",)
    assert runtime.tasks.get(task_id).used == 2
    with pytest.raises(InvalidAuthorizationDetails) as refused:
        request_token(runtime, agent, authorization_details=task_details(task_id))
    assert "used its budget" in refused.value.description


def test_a_decision_for_a_closed_task_is_deny(runtime: Runtime, agent: Client) -> None:
    task_id = open_task(runtime, agent)
    token = request_token(runtime, agent, authorization_details=task_details(task_id)).access_token
    question = question_for(runtime, agent, token)
    runtime.tasks.close(task_id)
    decision = runtime.decisions.decide([question], RequestContext())[0]
    assert not decision.allowed
    assert decision.errors == (f"task '{task_id}' is closed",)


def test_another_worker_learns_of_tasks_from_the_change_feed(runtime: Runtime, agent: Client) -> None:
    assert runtime.follower is not None
    task_id = open_task(runtime, agent)
    runtime.tasks.load()  # a fresh worker: only open tasks
    assert runtime.tasks.cached(task_id) is not None
    with runtime.engine.begin():
        pass
    runtime.tasks.close(task_id)
    runtime.follower.poll_once()
    cached = runtime.tasks.cached(task_id)
    assert cached is not None
    assert cached.state is TaskState.CLOSED


def test_a_task_closed_elsewhere_gets_no_new_token_even_before_this_worker_hears(
    runtime: Runtime, agent: Client
) -> None:
    task_id = open_task(runtime, agent)
    with writing(runtime.engine) as conn:  # another replica closed it; no feed read here yet
        SqlTaskRepository().finish(conn, task_id, TaskState.CLOSED, runtime.clock.now(), "elsewhere")
    cached = runtime.tasks.cached(task_id)
    assert cached is not None
    assert cached.state is TaskState.OPEN
    with pytest.raises(InvalidAuthorizationDetails) as refused:
        request_token(runtime, agent, authorization_details=task_details(task_id))
    assert refused.value.description == f"task '{task_id}' is no longer open"
