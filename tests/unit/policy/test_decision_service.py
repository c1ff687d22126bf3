"""DecisionService: every decision is audited; an unwritable log means deny unless fail_open."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.identity.agents import Transition
from tessera.identity.service import NewAgent
from tessera.ids import SequentialIds
from tessera.policy.bundle import Bundle
from tessera.policy.context import ContextBuilder, TokenFacts
from tessera.policy.decisions import AUDIT_UNAVAILABLE, DecisionService, Question
from tessera.policy.entities import EntityIndex, Uid
from tessera.policy.pdp import Decision, PolicyDecisionPoint
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime
from tessera.tokens.revocation import RevocationState
from tests.unit.policy.conftest import CORPORATE_IP
from tests.unit.policy.helpers import OVERFLOW, audit_down, audit_records

POLICIES = (
    '@id("agents-read")\npermit(principal is Agent, action == Action::"read", resource);\n'
    '@id("no-deleting")\nforbid(principal, action == Action::"delete", resource);\n'
    '@id("agents-delete")\npermit(principal is Agent, action == Action::"delete", resource);\n'
    f'@id("erroring-write")\npermit(principal, action == Action::"write", resource)\n'
    f"when {{ context.delegation_depth + {OVERFLOW} > 0 }};\n"
)
PEP = RequestContext(Actor(ActorType.AGENT, "gateway"), ip=CORPORATE_IP)


def setup(runtime: Runtime) -> tuple[str, str]:
    """Apply the test policies (starter schema); returns (policy version, agent id)."""
    files = {"schema.cedarschema": starter_bundle().files["schema.cedarschema"], "p.cedar": POLICIES}
    version = runtime.policies.apply(Bundle(files), RequestContext())
    agent = runtime.agents.create(NewAgent(name="bot", owner="ana@example.com", segment="s"))
    return version, agent.id


def ask(runtime: Runtime, agent_id: str, *actions: str, **fields: object) -> list[Decision]:
    questions = [Question(Uid("Agent", agent_id), a, Uid("Resource", "doc-1"), **fields) for a in actions]  # type: ignore[arg-type]
    return runtime.decisions.decide(questions, PEP)


@pytest.fixture
def fail_open_runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update={"audit_decisions_fail_open": True}), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


def test_each_decision_leaves_one_decision_record(runtime: Runtime) -> None:
    version, agent = setup(runtime)
    before = len(audit_records(runtime.engine, "decision"))
    permit, deny = ask(runtime, agent, "read", "delete")
    records = audit_records(runtime.engine, "decision")[before:]
    assert len(records) == 2
    assert [r["decision"] for r in records] == [
        {"outcome": "permit", "policies": ["agents-read"], "policy_version": version,
         "decision_id": permit.decision_id},
        {"outcome": "deny", "policies": ["no-deleting"], "policy_version": version,
         "decision_id": deny.decision_id},
    ]  # fmt: skip
    assert permit.decision_id != deny.decision_id
    first = records[0]
    assert first["subject"] == agent
    assert first["actor"] == {"type": "agent", "id": "gateway"}
    # The record carries the zone of the caller's address (this runtime has no zone for it).
    assert first["network"] == {"ip": CORPORATE_IP, "zone": runtime.contexts.zone_of(CORPORATE_IP)}
    assert first["data"] == {
        "action": "read",
        "resource": "Resource::doc-1",
        "errors": [],
        "network_zone": "unknown",
        "delegation_depth": 0,
        "beyond_task": False,
    }


def test_errors_are_recorded_with_the_decision(runtime: Runtime) -> None:
    _, agent = setup(runtime)
    assert ask(runtime, agent, "write")[0].allowed  # depth 0: no overflow, the permit applies
    (decision,) = ask(runtime, agent, "write", token=TokenFacts(delegation_depth=1))
    assert not decision.allowed
    assert "`erroring-write`" in decision.errors[0]
    record = audit_records(runtime.engine, "decision")[-1]
    assert record["decision"]["outcome"] == "deny"
    assert record["data"]["errors"] == list(decision.errors)


def test_the_task_of_the_token_is_recorded(runtime: Runtime) -> None:
    _, agent = setup(runtime)
    ask(runtime, agent, "read", token=TokenFacts(task_id="T-7", purpose="triage"))
    assert audit_records(runtime.engine, "decision")[-1]["task_id"] == "T-7"


def test_an_unwritable_audit_log_turns_every_decision_into_deny(runtime: Runtime) -> None:
    _, agent = setup(runtime)
    before = len(audit_records(runtime.engine))
    with audit_down(runtime.engine):
        decisions = ask(runtime, agent, "read", "delete")
    for decision in decisions:
        assert not decision.allowed
        assert decision.determining == ()
        assert decision.errors == (AUDIT_UNAVAILABLE,)
        assert decision.decision_id.startswith("dec_")
        assert decision.obligations == {}
    assert len(audit_records(runtime.engine)) == before
    assert ask(runtime, agent, "read")[0].allowed  # back once the log is


def test_fail_open_answers_without_a_record_and_logs_critical(
    fail_open_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    version, agent = setup(fail_open_runtime)
    before = len(audit_records(fail_open_runtime.engine))
    with audit_down(fail_open_runtime.engine), caplog.at_level(logging.CRITICAL):
        (decision,) = ask(fail_open_runtime, agent, "read")
    assert decision.allowed
    assert decision.determining == ("agents-read",)
    assert decision.policy_version == version
    assert len(audit_records(fail_open_runtime.engine)) == before
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "AUDIT FAIL-OPEN" in critical[0].getMessage()
    assert agent in critical[0].getMessage()


def test_the_context_is_enriched_from_what_tessera_knows(runtime: Runtime, clock: ManualClock) -> None:
    _, agent = setup(runtime)
    runtime.agents.transition(agent, Transition.QUARANTINE, "suspicious")
    question = Question(
        Uid("Agent", agent),
        "read",
        Uid("Resource", "doc-1"),
        {"agent_state": "active", "risk": 0, "network_zone": "corporate", "posture": {"compliant": True}},
        token=TokenFacts(task_id="T-1", purpose="p", delegation_depth=1),
    )
    context = runtime.decisions.request_for(question, "127.0.0.1").context
    assert context["agent_state"] == "quarantined"
    assert context["network_zone"] == "local"
    assert context["time"] == {"hour": 8, "weekday": "Fri"}
    assert (context["task_id"], context["delegation_depth"]) == ("T-1", 1)
    assert context["task_resources"] == []
    assert context["posture"] == {"compliant": True}
    clock.advance(3 * 3600)
    assert runtime.decisions.request_for(question).context["time"]["hour"] == 11


def test_a_principal_that_is_not_an_agent_is_recorded_by_its_uid(runtime: Runtime) -> None:
    setup(runtime)
    question = Question(Uid("Owner", "ana@example.com"), "read", Uid("Resource", "doc-1"))
    (decision,) = runtime.decisions.decide([question], PEP)
    assert not decision.allowed
    record = audit_records(runtime.engine, "decision")[-1]
    assert record["subject"] == "Owner::ana@example.com"


def test_without_an_active_bundle_every_decision_is_deny() -> None:
    clock = ManualClock()
    pdp = PolicyDecisionPoint(clock, SequentialIds(), EntityIndex())
    service = DecisionService(pdp, ContextBuilder({}), clock, RevocationState(), None, fail_open=False)
    (decision,) = service.decide([Question(Uid("Agent", "a"), "read", Uid("Resource", "r"))], PEP)
    assert not decision.allowed
    assert decision.errors == ("no policy is active",)
