"""AuthZEN → Cedar: entities and properties, context, the agent's token, batches, and records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import InvalidRequest
from tessera.policy.authzen import AuthZenService, TokenRejected, cedar_record, cedar_value, delegation_depth
from tessera.policy.authzen_requests import parse_batch, parse_evaluation
from tessera.policy.entities import Uid
from tessera.runtime import Runtime
from tests.unit.helpers import Client, register, request_token
from tests.unit.policy.authzen_support import (
    authzen_service,
    decision_records,
    example_version,
    start_example_runtime,
)

CALLER = RequestContext(ip="192.0.2.10")
ALICE = {"type": "user", "id": "alice"}
BOB = {"type": "user", "id": "bob"}
RECORD_1 = {"type": "record", "id": "record-1"}
RECORD_2 = {"type": "record", "id": "record-2"}
TASK = [{"type": "agent_task", "task_id": "T-7", "purpose": "audit records", "resources": ["urn:r:1"]}]


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    yield from start_example_runtime(settings, clock)


@pytest.fixture
def service(runtime: Runtime) -> AuthZenService:
    return authzen_service(runtime)


@pytest.fixture
def pep(runtime: Runtime) -> Client:
    return register(runtime, scopes=("authzen", "records:read"))


def ask(service: AuthZenService, **body: Any) -> dict[str, Any]:
    return service.evaluate(parse_evaluation(body), CALLER)


# --- The fixture's eight decisions, through the mapping -------------------------------------

FIXTURE = [
    ("rule 1", ALICE, {"name": "read"}, RECORD_1, True),
    ("rule 2", ALICE, {"name": "write"}, RECORD_1, True),
    ("rule 3", BOB, {"name": "read"}, RECORD_1, True),
    ("rule 4", BOB, {"name": "write"}, RECORD_1, False),
    ("rule 5", ALICE, {"name": "write"}, {**RECORD_2, "properties": {"status": "archived"}}, False),
    (
        "rule 6",
        {**BOB, "properties": {"role": "admin"}},
        {"name": "write"},
        {**RECORD_2, "properties": {"status": "archived"}},
        True,
    ),
    ("rule 7", ALICE, {"name": "delete", "properties": {"soft": True}}, RECORD_1, True),
    ("rule 8", ALICE, {"name": "delete", "properties": {"soft": False}}, RECORD_1, False),
]


@pytest.mark.parametrize("case", FIXTURE, ids=[case[0] for case in FIXTURE])
def test_the_fixture_decisions(service: AuthZenService, case: tuple[Any, ...]) -> None:
    rule, subject, action, resource, expected = case
    answer = ask(service, subject=subject, action=action, resource=resource)
    assert answer["decision"] is expected, (rule, answer)


def test_the_answer_explains_itself(runtime: Runtime, service: AuthZenService) -> None:
    answer = ask(service, subject=ALICE, action={"name": "read"}, resource=RECORD_1)
    context = answer["context"]
    assert context["policy_version"] == example_version() == runtime.pdp.version
    assert context["determining_policies"] == ["viewers-read-records"]
    assert context["decision_id"].startswith("dec")
    assert context["errors"] == []
    assert context["obligations"] == {}


def test_every_decision_is_recorded(runtime: Runtime, service: AuthZenService) -> None:
    before = len(decision_records(runtime))
    answer = ask(service, subject=BOB, action={"name": "write"}, resource=RECORD_1)
    records = decision_records(runtime)
    assert len(records) == before + 1
    last = records[-1]
    assert last["outcome"] == "deny"
    assert last["subject"] == "user::bob"
    assert answer["context"]["decision_id"] in last["body"]


# --- Entities and their properties --------------------------------------------------------


def test_request_properties_override_indexed_attributes(service: AuthZenService) -> None:
    archived_record_1 = {**RECORD_1, "properties": {"status": "archived", "owner": "bob"}}
    question = service.question(
        parse_evaluation({"subject": ALICE, "action": {"name": "write"}, "resource": archived_record_1})
    )
    assert question.entities["record::record-1"]["attrs"] == {"status": "archived", "owner": "bob"}
    answer = ask(service, subject=ALICE, action={"name": "write"}, resource=archived_record_1)
    assert answer["decision"] is False


def test_properties_merge_and_keep_the_entity_parents(service: AuthZenService) -> None:
    subject = {**ALICE, "properties": {"department": "Sales", "role": "manager"}}
    question = service.question(
        parse_evaluation({"subject": subject, "action": {"name": "read"}, "resource": RECORD_1})
    )
    alice = question.entities["user::alice"]
    assert alice["attrs"] == {"department": "Sales", "role": "manager"}
    assert {"type": "Role", "id": "editor"} in alice["parents"]
    assert ask(service, subject=subject, action={"name": "read"}, resource=RECORD_1)["decision"] is True


def test_an_entity_the_pdp_does_not_know_is_what_the_request_says(service: AuthZenService) -> None:
    carol = {"type": "user", "id": "carol", "properties": {"role": "admin"}}
    archived = {"type": "record", "id": "record-9", "properties": {"status": "archived"}}
    assert ask(service, subject=carol, action={"name": "write"}, resource=archived)["decision"] is True
    assert (
        ask(service, subject={"type": "user", "id": "carol"}, action={"name": "read"}, resource=RECORD_1)[
            "decision"
        ]
        is False
    )


def test_without_properties_the_indexed_entity_is_used_as_it_is(service: AuthZenService) -> None:
    question = service.question(
        parse_evaluation({"subject": BOB, "action": {"name": "write"}, "resource": RECORD_2})
    )
    assert question.entities == {}
    assert (question.principal, question.resource) == (Uid("user", "bob"), Uid("record", "record-2"))


def test_registry_attributes_of_an_agent_win(runtime: Runtime, service: AuthZenService, pep: Client) -> None:
    subject = {
        "type": "Agent",
        "id": pep.id,
        "properties": {"state": "active", "owner": "x@evil", "team": "a"},
    }
    question = service.question(
        parse_evaluation({"subject": subject, "action": {"name": "read"}, "resource": RECORD_1})
    )
    attrs = question.entities[f"Agent::{pep.id}"]["attrs"]
    assert attrs["owner"] == "owner@example.com"
    assert attrs["state"] == pep.agent.state.value
    assert attrs["team"] == "a"


def test_a_caller_cannot_invent_an_agent(service: AuthZenService) -> None:
    subject = {"type": "Agent", "id": "agt_nobody", "properties": {"state": "active", "scopes": ["x"]}}
    question = service.question(
        parse_evaluation({"subject": subject, "action": {"name": "read"}, "resource": RECORD_1})
    )
    assert question.entities == {}


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ({"type": "not a type", "id": "a"}, "subject: invalid entity type 'not a type'"),
        ({"type": "user", "id": ""}, "subject: entity id must be 1-256 printable characters"),
        ({"type": "user", "id": "a\nb"}, "subject: entity id must be 1-256 printable characters"),
        ({"type": "user", "id": "a" * 257}, "subject: entity id must be 1-256 printable characters"),
    ],
)
def test_types_must_be_cedar_type_names(
    service: AuthZenService, subject: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        service.question(
            parse_evaluation({"subject": subject, "action": {"name": "read"}, "resource": RECORD_1})
        )


@pytest.mark.parametrize("name", ["", "x" * 257])
def test_action_names_are_bounded(service: AuthZenService, name: str) -> None:
    with pytest.raises(InvalidRequest, match=r"action\.name must be 1-256 characters"):
        service.question(parse_evaluation({"subject": ALICE, "action": {"name": name}, "resource": RECORD_1}))


# --- Context ------------------------------------------------------------------------------------


def test_action_properties_are_context_action(service: AuthZenService) -> None:
    body = {
        "subject": ALICE,
        "action": {"name": "delete", "properties": {"soft": True, "note": None}},
        "resource": RECORD_1,
        "context": {"action": {"soft": False}, "ip": "192.168.1.1", "gone": None},
    }
    question = service.question(parse_evaluation(body))
    assert question.context["action"] == {"soft": True}
    assert question.context["ip"] == "192.168.1.1"
    assert "gone" not in question.context
    plain = service.question(parse_evaluation({**body, "action": {"name": "read"}}))
    assert plain.context["action"] == {}


def test_task_resources_and_client_ip_are_never_the_callers_to_claim(
    runtime: Runtime, service: AuthZenService
) -> None:
    body = {
        "subject": ALICE,
        "action": {"name": "read"},
        "resource": RECORD_1,
        "context": {"task_resources": ["urn:x"]},
    }
    question = service.question(parse_evaluation(body))
    assert question.context["task_resources"] == []
    assert question.context["client_ip"] == ""
    evaluated = runtime.decisions.request_for(question, CALLER.ip).context
    assert evaluated["network_zone"] == "unknown"  # not the PEP's own address
    assert evaluated["client_ip"] == ""
    with_ip = service.question(parse_evaluation({**body, "context": {"client_ip": "127.0.0.1"}}))
    assert runtime.decisions.request_for(with_ip, CALLER.ip).context["network_zone"] == "local"


def test_tessera_context_wins_over_the_callers(runtime: Runtime, service: AuthZenService) -> None:
    body = {
        "subject": ALICE,
        "action": {"name": "read"},
        "resource": RECORD_1,
        "context": {"time": "2025-06-27T18:03-07:00", "risk": 0},
    }
    evaluated = runtime.decisions.request_for(service.question(parse_evaluation(body)), None).context
    assert set(evaluated["time"]) == {"hour", "weekday"}
    assert ask(service, **body)["decision"] is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("text", "text"),
        (7, 7),
        (2.0, 2),
        (-(2**63), -(2**63)),
        (2**63, str(2**63)),
        (1.5, {"__extn": {"fn": "decimal", "arg": "1.5000"}}),
        (-0.0001, {"__extn": {"fn": "decimal", "arg": "-0.0001"}}),
        (0.123456, "0.123456"),
        (1e300, "1e+300"),
        ([1, None, "a"], [1, "a"]),
        ({"a": None, "b": {"c": 1}, "__expr": "1"}, {"b": {"c": 1}}),
        ({"__entity": {"type": "user", "id": "bob"}}, {"__entity": {"type": "user", "id": "bob"}}),
        ({"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}),
    ],
)
def test_json_values_become_cedar_values(value: Any, expected: Any) -> None:
    assert cedar_value(value, "x") == expected


def test_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(40):
        cursor["a"] = {}
        cursor = cursor["a"]
    with pytest.raises(InvalidRequest, match="properties is nested more than 32 levels"):
        cedar_record(deep, "properties")


def test_cedar_errors_never_quote_the_entities(service: AuthZenService) -> None:
    subject = {**BOB, "properties": {"secret_note": "s3cr3t", "bad": {"__extn": {"fn": "nope", "arg": "1"}}}}
    answer = ask(service, subject=subject, action={"name": "read"}, resource=RECORD_1)
    assert answer["decision"] is False
    errors = answer["context"]["errors"]
    assert errors
    assert "<entities>" in errors[0]
    assert "s3cr3t" not in json.dumps(answer)


# --- The agent's access token in context ------------------------------------------------------


def token_for(runtime: Runtime, client: Client, **params: str) -> str:
    return request_token(runtime, client, scope="authzen", **params).access_token


def agent_body(client: Client, token: str, **context: Any) -> dict[str, Any]:
    return {
        "subject": {"type": "Agent", "id": client.id},
        "action": {"name": "read"},
        "resource": RECORD_1,
        "context": {"access_token": token, **context},
    }


def test_the_token_gives_the_task_facts_and_is_removed(
    runtime: Runtime, service: AuthZenService, pep: Client
) -> None:
    token = token_for(runtime, pep, authorization_details=json.dumps(TASK))
    question = service.question(parse_evaluation(agent_body(pep, token)))
    assert question.token is not None
    assert (question.token.task_id, question.token.purpose, question.token.delegation_depth) == (
        "T-7",
        "audit records",
        0,
    )
    assert question.context["task_resources"] == ["urn:r:1"]
    assert "access_token" not in question.context
    evaluated = runtime.decisions.request_for(question, None).context
    assert (evaluated["task_id"], evaluated["purpose"]) == ("T-7", "audit records")
    answer = service.evaluate(parse_evaluation(agent_body(pep, token)), CALLER)
    assert token not in json.dumps(answer)


def test_a_token_of_another_subject_is_a_deny(runtime: Runtime, service: AuthZenService, pep: Client) -> None:
    other = register(runtime, scopes=("authzen",))
    token = token_for(runtime, other)
    answer = service.evaluate(parse_evaluation(agent_body(pep, token)), CALLER)
    assert answer["decision"] is False
    assert answer["context"]["error"] == {
        "status": 401,
        "message": "access token subject does not match the request's subject",
    }
    assert token not in json.dumps(answer)
    assert decision_records(runtime)[-1]["outcome"] == "deny"


def test_a_user_subject_cannot_carry_an_agent_token(
    runtime: Runtime, service: AuthZenService, pep: Client
) -> None:
    body = {**agent_body(pep, token_for(runtime, pep)), "subject": {"type": "user", "id": pep.id}}
    with pytest.raises(TokenRejected):
        service.question(parse_evaluation(body))


def test_a_revoked_or_forged_token_is_a_deny(runtime: Runtime, service: AuthZenService, pep: Client) -> None:
    issued = request_token(runtime, pep, scope="authzen")
    runtime.revocation.mark_revoked({issued.jti: runtime.clock.now() + 300})
    answer = service.evaluate(parse_evaluation(agent_body(pep, issued.access_token)), CALLER)
    assert answer["decision"] is False
    assert answer["context"]["error"]["message"] == "access token rejected: token has been revoked"
    forged = service.evaluate(parse_evaluation(agent_body(pep, "not.a.token")), CALLER)
    assert forged["decision"] is False
    assert forged["context"]["error"]["status"] == 401


def test_an_expired_token_is_a_deny(
    runtime: Runtime, clock: ManualClock, service: AuthZenService, pep: Client
) -> None:
    token = token_for(runtime, pep)
    clock.advance(3600)
    with pytest.raises(TokenRejected, match="expired"):
        service.question(parse_evaluation(agent_body(pep, token)))


def test_the_access_token_must_be_a_string(service: AuthZenService, pep: Client) -> None:
    with pytest.raises(InvalidRequest, match=r"context\.access_token must be a string"):
        service.question(parse_evaluation(agent_body(pep, 42)))  # type: ignore[arg-type]


def test_without_a_verifier_a_token_cannot_be_accepted(runtime: Runtime, pep: Client) -> None:
    service = AuthZenService(runtime.decisions, runtime.entities)
    with pytest.raises(TokenRejected, match="cannot be verified"):
        service.question(parse_evaluation(agent_body(pep, token_for(runtime, pep))))


def test_delegation_depth_counts_nested_actors() -> None:
    assert delegation_depth({}) == 0
    assert delegation_depth({"act": {"sub": "a"}}) == 1
    assert delegation_depth({"act": {"sub": "a", "act": {"sub": "b", "act": "bad"}}}) == 2


# --- Batches -----------------------------------------------------------------------------------------


def batch(semantic: str | None, *resources: dict[str, Any], action: str = "write") -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": ALICE,
        "action": {"name": action},
        "evaluations": [{"resource": r} if r else {} for r in resources],
    }
    if semantic is not None:
        body["options"] = {"evaluations_semantic": semantic}
    return body


def decisions_of(answer: dict[str, Any]) -> list[bool]:
    return [item["decision"] for item in answer["evaluations"]]


def test_execute_all_answers_every_item_in_order(runtime: Runtime, service: AuthZenService) -> None:
    before = len(decision_records(runtime))
    answer = service.evaluate_batch(parse_batch(batch(None, RECORD_2, RECORD_1, {}, RECORD_2)), CALLER)
    assert decisions_of(answer) == [False, True, False, False]
    assert answer["evaluations"][2]["context"] == {
        "error": {
            "status": 400,
            "message": "evaluations[2]: missing required field 'resource' and no top-level default",
        }
    }
    assert "decision" not in answer
    assert len(decision_records(runtime)) == before + 3


def test_deny_on_first_deny_stops_at_the_first_deny(runtime: Runtime, service: AuthZenService) -> None:
    before = len(decision_records(runtime))
    answer = service.evaluate_batch(
        parse_batch(batch("deny_on_first_deny", RECORD_1, RECORD_2, RECORD_1)), CALLER
    )
    assert decisions_of(answer) == [True, False]
    assert answer["evaluations"][1]["context"]["reason"] == "deny_on_first_deny"
    assert len(decision_records(runtime)) == before + 2


def test_deny_on_first_deny_stops_at_a_failure(service: AuthZenService) -> None:
    answer = service.evaluate_batch(parse_batch(batch("deny_on_first_deny", RECORD_1, {}, RECORD_1)), CALLER)
    assert decisions_of(answer) == [True, False]
    assert answer["evaluations"][1]["context"]["error"]["status"] == 400


def test_deny_on_first_deny_with_no_deny_answers_all(service: AuthZenService) -> None:
    answer = service.evaluate_batch(parse_batch(batch("deny_on_first_deny", RECORD_1, RECORD_1)), CALLER)
    assert decisions_of(answer) == [True, True]
    assert all("reason" not in item["context"] for item in answer["evaluations"])


def test_permit_on_first_permit_stops_at_the_first_permit(runtime: Runtime, service: AuthZenService) -> None:
    before = len(decision_records(runtime))
    answer = service.evaluate_batch(
        parse_batch(batch("permit_on_first_permit", RECORD_2, {}, RECORD_1, RECORD_1)), CALLER
    )
    assert decisions_of(answer) == [False, False, True]
    assert answer["evaluations"][2]["context"]["reason"] == "permit_on_first_permit"
    assert len(decision_records(runtime)) == before + 2


def test_permit_on_first_permit_with_no_permit_answers_all(service: AuthZenService) -> None:
    answer = service.evaluate_batch(parse_batch(batch("permit_on_first_permit", RECORD_2, RECORD_2)), CALLER)
    assert decisions_of(answer) == [False, False]


def test_a_batch_without_evaluations_is_one_evaluation(service: AuthZenService) -> None:
    body = {"subject": ALICE, "action": {"name": "read"}, "resource": RECORD_1, "evaluations": []}
    answer = service.evaluate_batch(parse_batch(body), CALLER)
    assert answer["decision"] is True
    assert "evaluations" not in answer


def test_a_rejected_token_fails_only_its_item(runtime: Runtime, service: AuthZenService, pep: Client) -> None:
    good = token_for(runtime, pep)
    body = {
        "subject": {"type": "Agent", "id": pep.id},
        "action": {"name": "read"},
        "resource": RECORD_1,
        "evaluations": [{"context": {"access_token": good}}, {"context": {"access_token": "x.y.z"}}],
    }
    answer = service.evaluate_batch(parse_batch(body), CALLER)
    first, second = answer["evaluations"]
    assert "error" not in first["context"]
    assert second["decision"] is False
    assert second["context"]["error"]["status"] == 401


def test_no_active_policy_denies(runtime: Runtime) -> None:
    runtime.pdp._compiled = None  # as on a worker that has not loaded a bundle yet
    answer = authzen_service(runtime).evaluate(
        parse_evaluation({"subject": ALICE, "action": {"name": "read"}, "resource": RECORD_1}), CALLER
    )
    assert answer["decision"] is False
    assert answer["context"]["errors"] == ["no policy is active"]
