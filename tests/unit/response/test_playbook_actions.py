"""Playbooks end to end (manual clock): risk rises → the PDP denies by policy → tokens revoked →
quarantine → a person releases; cooldowns hold across replicas; every action is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import UnauthorizedClient
from tessera.identity.agents import Transition
from tessera.policy.bundle import Bundle
from tessera.policy.context import TokenFacts
from tessera.policy.decisions import APPROVAL_REQUIRED, Question
from tessera.policy.entities import Uid
from tessera.policy.service import starter_bundle
from tessera.response.playbooks import parse_yaml
from tessera.runtime import Runtime
from tessera.storage.database import reading
from tessera.storage.tables import audit_records
from tessera.tokens.jose import JwsError
from tests.unit.helpers import Client, register, request_token

PEP = Actor(ActorType.AGENT, "gateway")
POLICIES = (
    '@id("read")\npermit(principal is Agent, action == Action::"read", resource);\n'
    '@id("inactive")\nforbid(principal, action, resource) when { context.agent_state != "active" };\n'
    '@id("high-risk")\nforbid(principal, action, resource) when { context.risk >= 80 };\n'
    '@id("tokens")\npermit(principal is Agent, action == Action::"issue_token", resource);\n'
)


def setup(runtime: Runtime) -> Client:
    files = {"schema.cedarschema": starter_bundle().files["schema.cedarschema"], "p.cedar": POLICIES}
    runtime.policies.apply(Bundle(files), RequestContext())
    return register(runtime)


def ask(
    runtime: Runtime, agent_id: str, resource: str, *, ip: str = "10.1.2.3"
) -> tuple[bool, tuple[str, ...]]:
    question = Question(
        Uid("Agent", agent_id),
        "read",
        Uid("Resource", resource),
        context={"task_resources": ["doc-0", "doc-1", "doc-2"]},
        token=TokenFacts(task_id="T-1"),
    )
    decision = runtime.decisions.decide([question], RequestContext(PEP, ip=ip))[0]
    runtime.events.drain()
    return decision.allowed, decision.errors


def learn(runtime: Runtime, clock: ManualClock, agent_id: str) -> None:
    for i in range(20):
        clock.advance(30)
        assert ask(runtime, agent_id, f"doc-{i % 3}")[0]


def actions_recorded(runtime: Runtime) -> list[tuple[str, str]]:
    from tessera.audit.records import AuditRecord

    with reading(runtime.engine) as conn:
        rows = conn.execute(
            select(audit_records.c.body, audit_records.c.hash)
            .where(audit_records.c.type == "response.action")
            .order_by(audit_records.c.seq)
        ).all()
    import json

    records = [AuditRecord.from_body(json.loads(r.body), r.hash) for r in rows]
    for record in records:
        assert record.data["reasons"], "every action carries the reasons that triggered it"
    return [(r.data["playbook"], r.data["action"]) for r in records]


def test_risk_rises_then_policy_denies_tokens_are_revoked_and_the_agent_quarantined_until_released(
    responding: Runtime, clock: ManualClock
) -> None:
    client = setup(responding)
    agent = client.id
    token = request_token(responding, client)  # tokens are part of its ordinary work
    learn(responding, clock, agent)
    assert token.expires_in == responding.settings.access_token_ttl

    # Two reads outside the task: 2 x (30 + 8) = 76 ≥ 50 → step-up: approvals and short tokens.
    assert ask(responding, agent, "doc-7")[0]
    assert ask(responding, agent, "doc-8")[0]
    assert responding.risk.view(agent, clock.now()).score == 76
    allowed, errors = ask(responding, agent, "doc-0")
    assert not allowed
    assert errors == (APPROVAL_REQUIRED,)
    assert responding.decisions.request_for(
        Question(Uid("Agent", agent), "read", Uid("Resource", "doc-0"))
    ).context["approval_required"]
    short = request_token(responding, client)
    assert short.expires_in == 60

    # A third: ≥ 80 → contain: every live token revoked, the agent quarantined.
    ask(responding, agent, "doc-9")
    assert responding.revocation.agent_state(agent) == "quarantined"
    for live in (token, short):
        with pytest.raises(JwsError):
            responding.validator.verify(live.access_token)
    with pytest.raises(UnauthorizedClient):
        request_token(responding, client)
    assert not ask(responding, agent, "doc-0")[0]
    assert actions_recorded(responding) == [
        ("step-up-elevated-risk", "alert"),
        ("step-up-elevated-risk", "require_approval"),
        ("step-up-elevated-risk", "cap_token_lifetime"),
        ("contain-high-risk", "revoke_tokens"),
        ("contain-high-risk", "quarantine"),
        ("contain-high-risk", "notify_owner"),
        ("contain-high-risk", "alert"),
    ]

    # Only a person releases it; the score and the playbooks' controls start again from zero.
    responding.agents.transition(agent, Transition.RELEASE, "investigated: false alarm", RequestContext())
    responding.events.drain()
    assert responding.risk.view(agent, clock.now()).score == 0
    assert not responding.controls.approval_required(agent)
    assert responding.controls.ttl_cap(agent) is None
    assert ask(responding, agent, "doc-0")[0]
    assert request_token(responding, client).expires_in == responding.settings.access_token_ttl


COOLDOWN = """
playbooks:
  - name: new-zone-step-up
    when: {detectors: [new_zone]}
    actions: [{require_approval: 1}]
    cooldown: 600
"""


def test_a_playbook_does_not_fire_again_within_its_cooldown_on_any_replica(
    responding: Runtime, responding_replica: Runtime, clock: ManualClock
) -> None:
    client = setup(responding)
    responding.playbooks.apply(parse_yaml(COOLDOWN), RequestContext())
    responding_replica.follower.poll_once()  # type: ignore[union-attr]
    assert [b.name for b in responding_replica.playbooks.playbooks] == ["new-zone-step-up"]
    learn(responding, clock, client.id)
    ask(responding, client.id, "doc-0", ip="203.0.113.7")  # zone "unknown": first time
    assert actions_recorded(responding) == [("new-zone-step-up", "require_approval")]
    clock.advance(60)
    book = responding.playbooks.playbooks[0]
    assert not responding_replica.playbooks._claim(book, client.id, clock.now())
    assert not responding.playbooks._claim(book, client.id, clock.now())
    clock.advance(600)
    assert responding_replica.playbooks._claim(book, client.id, clock.now())


def test_a_count_in_a_window_triggers(responding: Runtime, clock: ManualClock) -> None:
    client = setup(responding)
    text = """
playbooks:
  - name: two-bursts
    when: {count: {detector: denial_burst, at_least: 2, within: 600}}
    actions: [revoke_tokens]
"""
    responding.playbooks.apply(parse_yaml(text), RequestContext())
    token = request_token(responding, client)
    responding.kill_switch.kill("task", "T-1", "deny every decision of the task", RequestContext())
    for _ in range(5):
        clock.advance(1)
        ask(responding, client.id, "doc-0")
    assert actions_recorded(responding) == []
    clock.advance(120)
    for _ in range(5):
        clock.advance(1)
        ask(responding, client.id, "doc-0")
    assert actions_recorded(responding) == [("two-bursts", "revoke_tokens")]
    with pytest.raises(JwsError):
        responding.validator.verify(token.access_token)


def test_an_applied_empty_set_stays_empty_and_the_default_is_only_for_a_fresh_install(
    responding: Runtime, responding_replica: Runtime
) -> None:
    assert responding.playbooks.source == "default"
    assert responding.playbooks.playbooks
    responding.playbooks.apply([], RequestContext())
    responding_replica.follower.poll_once()  # type: ignore[union-attr]
    for runtime in (responding, responding_replica):
        assert runtime.playbooks.source == "applied"
        assert runtime.playbooks.playbooks == []
