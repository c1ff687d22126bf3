"""The kill switch: revokes every live token in scope, blocks new ones everywhere, until released."""

from __future__ import annotations

import pytest

from tessera.audit.service import RequestContext
from tessera.errors import Conflict, NotFound, UnauthorizedClient, ValidationFailed
from tessera.policy.decisions import Question
from tessera.policy.entities import Uid
from tessera.runtime import Runtime
from tessera.tokens.jose import JwsError
from tests.unit.helpers import register, request_token

ADMIN = RequestContext()


def test_killing_an_agent_revokes_its_tokens_and_refuses_new_ones(runtime: Runtime) -> None:
    client = register(runtime)
    token = request_token(runtime, client)
    rule = runtime.kill_switch.kill("agent", client.id, "incident 42", ADMIN)
    assert rule.revoked_tokens == 1
    assert rule.scope == "agent"
    assert rule.target == client.id
    with pytest.raises(JwsError, match=r"revoked|kill switch"):
        runtime.validator.verify(token.access_token)
    with pytest.raises(UnauthorizedClient, match=rule.id):
        request_token(runtime, client)
    released = runtime.kill_switch.release(rule.id, "contained", ADMIN)
    assert released.released_reason == "contained"
    fresh = request_token(runtime, client)
    assert runtime.validator.verify(fresh.access_token).client_id == client.id
    with pytest.raises(Conflict, match="already released"):
        runtime.kill_switch.release(rule.id, "again", ADMIN)


def test_a_kill_reaches_another_worker_through_the_change_feed(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    replica.follower.poll_once()  # type: ignore[union-attr]
    token = request_token(replica, client)
    rule = runtime.kill_switch.kill("agent", client.id, "stop", ADMIN)
    # The replica has not polled yet: issuance still refuses (the rule is read in its transaction).
    with pytest.raises(UnauthorizedClient, match=rule.id):
        request_token(replica, client)
    replica.follower.poll_once()  # type: ignore[union-attr]
    assert [r.id for r in replica.kill_rules.active()] == [rule.id]
    with pytest.raises(JwsError):
        replica.validator.verify(token.access_token)
    runtime.kill_switch.release(rule.id, "ok", ADMIN)
    replica.follower.poll_once()  # type: ignore[union-attr]
    assert replica.kill_rules.active() == []


def test_killing_a_task_stops_only_that_tasks_tokens(runtime: Runtime) -> None:
    client = register(runtime)
    details = '[{"type":"agent_task","task_id":"T-1","purpose":"p","resources":["https://r.example/1"]}]'
    in_task = request_token(runtime, client, authorization_details=details)
    other = request_token(runtime, client)
    rule = runtime.kill_switch.kill("task", "T-1", "task went rogue", ADMIN)
    assert rule.revoked_tokens == 1
    with pytest.raises(JwsError):
        runtime.validator.verify(in_task.access_token)
    assert runtime.validator.verify(other.access_token).client_id == client.id
    with pytest.raises(UnauthorizedClient):
        request_token(runtime, client, authorization_details=details)


def test_killing_everything_a_subject_delegated_and_an_owners_agents(runtime: Runtime) -> None:
    first, second = register(runtime), register(runtime)
    token = request_token(runtime, first)
    # client_credentials tokens carry the agent as their chain's subject
    rule = runtime.kill_switch.kill("delegator", first.id, "compromised", ADMIN)
    assert rule.revoked_tokens == 1
    with pytest.raises(JwsError):
        runtime.validator.verify(token.access_token)
    other = request_token(runtime, second)
    owner_rule = runtime.kill_switch.kill("owner", "owner@example.com", "owner left", ADMIN)
    assert owner_rule.revoked_tokens == 1
    with pytest.raises(JwsError):
        runtime.validator.verify(other.access_token)
    with pytest.raises(UnauthorizedClient):
        request_token(runtime, second)


def test_decisions_for_a_killed_agent_are_deny(runtime: Runtime) -> None:
    from tessera.policy.bundle import Bundle
    from tessera.policy.service import starter_bundle

    files = {
        "schema.cedarschema": starter_bundle().files["schema.cedarschema"],
        "p.cedar": 'permit(principal is Agent, action == Action::"read", resource);\n',
    }
    runtime.policies.apply(Bundle(files), ADMIN)
    client = register(runtime)
    question = Question(Uid("Agent", client.id), "read", Uid("Resource", "doc"))
    assert runtime.decisions.decide([question], ADMIN)[0].allowed
    rule = runtime.kill_switch.kill("agent", client.id, "stop", ADMIN)
    denied = runtime.decisions.decide([question], ADMIN)[0]
    assert not denied.allowed
    assert rule.id in denied.errors[0]


def test_kill_input_is_validated(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed, match="unknown kill scope 'planet'"):
        runtime.kill_switch.kill("planet", "x", "why", ADMIN)
    with pytest.raises(ValidationFailed, match="reason"):
        runtime.kill_switch.kill("task", "T-1", " ", ADMIN)
    with pytest.raises(ValidationFailed, match="printable"):
        runtime.kill_switch.kill("task", "T\n1", "why", ADMIN)
    with pytest.raises(ValidationFailed):
        runtime.kill_switch.kill("task", "x" * 321, "why", ADMIN)
    with pytest.raises(NotFound, match="agt_nobody"):
        runtime.kill_switch.kill("agent", "agt_nobody", "why", ADMIN)
    with pytest.raises(NotFound):
        runtime.kill_switch.release("kill_nothing", "why", ADMIN)


def test_kills_are_audited(runtime: Runtime) -> None:
    from sqlalchemy import select

    from tessera.storage.database import reading
    from tessera.storage.tables import audit_records

    client = register(runtime)
    request_token(runtime, client)
    rule = runtime.kill_switch.kill("agent", client.id, "incident", ADMIN)
    runtime.kill_switch.release(rule.id, "resolved", ADMIN)
    with reading(runtime.engine) as conn:
        types = [r.type for r in conn.execute(select(audit_records.c.type).order_by(audit_records.c.seq))]
    assert "kill.created" in types
    assert "kill.released" in types
    assert "token.revoked" in types


def test_a_delegator_kill_denies_decisions_for_every_agent_acting_for_them(runtime: Runtime) -> None:
    # RFC 8693 chains: a token's subject is the person acted for, its actors the agents.
    from tessera.policy.bundle import Bundle
    from tessera.policy.context import Delegation, TokenFacts
    from tessera.policy.service import starter_bundle

    files = {
        "schema.cedarschema": starter_bundle().files["schema.cedarschema"],
        "p.cedar": 'permit(principal is Agent, action == Action::"read", resource);\n',
    }
    runtime.policies.apply(Bundle(files), ADMIN)
    agent = register(runtime)
    chain = TokenFacts(delegation=Delegation(1, (agent.id,), "https://idp.example#alice"), delegation_depth=1)
    for_alice = Question(Uid("Agent", agent.id), "read", Uid("Resource", "doc"), token=chain)
    own = Question(Uid("Agent", agent.id), "read", Uid("Resource", "doc"))
    assert runtime.decisions.decide([for_alice], ADMIN)[0].allowed
    rule = runtime.kill_switch.kill("delegator", "https://idp.example#alice", "alice's account taken", ADMIN)
    denied, unaffected = runtime.decisions.decide([for_alice, own], ADMIN)
    assert not denied.allowed
    assert rule.id in denied.errors[0]
    assert unaffected.allowed
