"""The risk engine end to end in a runtime: audit records → baseline → score → PDP context (manual clock)."""

from __future__ import annotations

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.detect.stream import EventStream
from tessera.identity.agents import Transition
from tessera.identity.service import NewAgent
from tessera.policy.bundle import Bundle
from tessera.policy.context import TokenFacts
from tessera.policy.decisions import Question
from tessera.policy.entities import Uid
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime

PEP = RequestContext(Actor(ActorType.AGENT, "gateway"), ip="10.1.2.3")
POLICIES = (
    '@id("read")\npermit(principal is Agent, action == Action::"read", resource);\n'
    '@id("no-high-risk")\nforbid(principal, action, resource) when { context.risk >= 80 };\n'
    '@id("no-unusual-zone")\nforbid(principal, action, resource)\n'
    'when { context.risk_reasons.contains("new_zone") };\n'
)


def setup(runtime: Runtime) -> str:
    files = {"schema.cedarschema": starter_bundle().files["schema.cedarschema"], "p.cedar": POLICIES}
    runtime.policies.apply(Bundle(files), RequestContext())
    runtime.playbooks.apply([], RequestContext())  # detection and policy alone: no playbooks
    return runtime.agents.create(NewAgent(name="bot", owner="ana@example.com")).id


def ask(runtime: Runtime, agent_id: str, resource: str, *, task: bool = False, ip: str = "10.1.2.3") -> bool:
    question = Question(
        Uid("Agent", agent_id),
        "read",
        Uid("Resource", resource),
        context={"task_resources": ["doc-0", "doc-1", "doc-2"]} if task else {},
        token=TokenFacts(task_id="T-1") if task else None,
    )
    caller = RequestContext(PEP.actor, ip=ip)
    allowed = runtime.decisions.decide([question], caller)[0].allowed
    runtime.events.drain()
    return allowed


def learn_ordinary_work(runtime: Runtime, clock: ManualClock, agent_id: str, n: int = 20) -> None:
    for i in range(n):
        clock.advance(30)
        assert ask(runtime, agent_id, f"doc-{i % 3}", task=True)


def test_a_new_agent_learns_then_scores_and_the_pdp_sees_the_risk(
    detecting: Runtime, clock: ManualClock
) -> None:
    agent = setup(detecting)
    assert detecting.risk.view(agent, clock.now()).learning
    learn_ordinary_work(detecting, clock, agent)
    view = detecting.risk.view(agent, clock.now())
    assert not view.learning
    assert view.score == 0
    # Reads outside the task's declared resources (30 points each, and 8 for a resource never
    # seen): each is scored after its decision, so after the third even ordinary reads are refused.
    clock.advance(5)
    outcomes = [ask(detecting, agent, r, task=True) for r in ("doc-7", "doc-8", "doc-9", "doc-0")]
    assert outcomes == [True, True, True, False]
    view = detecting.risk.view(agent, clock.now())
    assert view.score >= 80
    assert "beyond_task" in view.detectors
    assert (
        detecting.decisions.request_for(Question(Uid("Agent", agent), "read", Uid("Resource", "x"))).context[
            "risk"
        ]
        == view.score
    )
    # The score decays as behaviour returns to normal: access narrows, then reopens, by policy.
    clock.advance(3600)
    assert detecting.risk.view(agent, clock.now()).score < 80
    assert ask(detecting, agent, "doc-0", task=True)


def test_risk_reasons_reach_policy_by_detector_name(detecting: Runtime, clock: ManualClock) -> None:
    agent = setup(detecting)
    learn_ordinary_work(detecting, clock, agent)
    clock.advance(30)
    assert ask(detecting, agent, "doc-0", task=True, ip="203.0.113.7")  # decided before the finding
    assert not ask(detecting, agent, "doc-0", task=True, ip="203.0.113.7")
    request = detecting.decisions.request_for(Question(Uid("Agent", agent), "read", Uid("Resource", "x")))
    assert request.context["risk_reasons"] == ["new_zone"]


def test_a_caller_cannot_supply_its_own_risk(detecting: Runtime, clock: ManualClock) -> None:
    agent = setup(detecting)
    question = Question(
        Uid("Agent", agent),
        "read",
        Uid("Resource", "x"),
        context={"risk": 0, "risk_reasons": [], "approval_required": False},
    )
    detecting.risk_board.add(agent, [], learning=False, now=clock.now())
    from tessera.detect.risk import Reason

    detecting.risk_board.add(
        agent, [Reason("rate_spike", 90, "x", clock.now())], learning=False, now=clock.now()
    )
    context = detecting.decisions.request_for(question).context
    assert context["risk"] == 90
    assert context["risk_reasons"] == ["rate_spike"]


def test_scores_reach_other_replicas_and_release_resets_them(
    detecting: Runtime, detecting_replica: Runtime, clock: ManualClock
) -> None:
    agent = setup(detecting)
    detecting_replica.follower.poll_once()  # type: ignore[union-attr]
    learn_ordinary_work(detecting, clock, agent)
    for resource in ("doc-7", "doc-8"):
        ask(detecting, agent, resource, task=True)
    detecting_replica.follower.poll_once()  # type: ignore[union-attr]
    here = detecting.risk.view(agent, clock.now())
    there = detecting_replica.risk_board.view(agent, clock.now())
    assert there.score == here.score == 2 * (30 + 8)
    detecting.agents.transition(agent, Transition.QUARANTINE, "risk", RequestContext())
    detecting.agents.transition(agent, Transition.RELEASE, "cleared by ana", RequestContext())
    detecting.events.drain()
    detecting_replica.follower.poll_once()  # type: ignore[union-attr]
    assert detecting.risk.view(agent, clock.now()).score == 0
    assert detecting_replica.risk_board.view(agent, clock.now()).score == 0


def test_profiles_persist_across_a_restart(detecting: Runtime, clock: ManualClock) -> None:
    agent = setup(detecting)
    learn_ordinary_work(detecting, clock, agent)
    detecting.risk.snapshot()
    restarted = Runtime(detecting.settings, clock=clock)
    restarted.start(background=False)
    try:
        profile = restarted.risk.profile(agent)
        assert profile is not None
        assert profile.events == 20
        assert "corporate" in profile.zones
        assert not restarted.risk.view(agent, clock.now()).learning
    finally:
        restarted.stop()


def test_a_full_stream_drops_and_counts_instead_of_blocking() -> None:
    stream = EventStream(capacity=100)
    seen: list[object] = []
    stream.subscribe(seen.append)
    from tessera.audit.records import AuditEvent, build_record

    record = build_record(
        AuditEvent(type="decision", actor=Actor(ActorType.SYSTEM)),
        seq=1,
        record_id="a",
        ts_ms=0,
        prev_hash="0" * 64,
    )
    stream.offer([record] * 150)
    assert stream.dropped == 50
    assert stream.pending() == 100
    assert stream.drain() == 100
    assert len(seen) == 100


def test_records_of_a_rolled_back_transaction_never_reach_the_detector(detecting: Runtime) -> None:
    from tessera.audit.records import AuditEvent
    from tessera.storage.database import writing

    seen: list[str] = []
    detecting.auditor.subscribe(lambda records: seen.extend(r.type for r in records))
    try:
        with writing(detecting.engine) as conn:
            detecting.auditor.record_in(
                conn, AuditEvent(type="test.rolled_back", actor=Actor(ActorType.SYSTEM))
            )
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with writing(detecting.engine) as conn:
        detecting.auditor.record_in(conn, AuditEvent(type="test.committed", actor=Actor(ActorType.SYSTEM)))
    assert seen == ["test.committed"]
