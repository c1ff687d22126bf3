"""The river model flags what rules miss; scores combine reasons and decay back (injected time)."""

from __future__ import annotations

import random

from tessera.detect.detectors import learn
from tessera.detect.model import AgentModel, features
from tessera.detect.observations import Observation, observe, resource_type_of
from tessera.detect.profile import Profile
from tessera.detect.risk import Reason, RiskBoard
from tests.unit.detect.test_detectors import MONDAY_9, ordinary


def test_half_space_trees_score_an_outlier_above_every_ordinary_event() -> None:
    rng = random.Random(3)
    profile = Profile("agt_1", first_seen=MONDAY_9)
    model = AgentModel(window_size=50)
    at = MONDAY_9
    scores: list[float] = []
    for _ in range(400):
        at += 30 + rng.random() * 30
        obs = ordinary(MONDAY_9 + (at - MONDAY_9) % 28800, rng.randint(0, 4))
        score = model.score_and_learn(features(profile, obs))
        learn(profile, obs)
        if score is not None:
            scores.append(score)
    assert scores, "the model scores once it has seen two windows"
    outlier = ordinary(at + 6 * 3600, resource='Resource::"vault"', zone="elsewhere", delegation_depth=3)
    odd = model.score_and_learn(features(profile, outlier))
    assert odd is not None
    assert odd > max(scores)


def test_features_are_scaled_into_the_unit_interval() -> None:
    profile = Profile("agt_1", first_seen=MONDAY_9)
    x = features(profile, ordinary(MONDAY_9, delegation_depth=50, denied=True))
    assert all(0.0 <= v <= 1.0 for v in x.values())


def test_the_score_sums_reasons_caps_at_100_and_decays_by_half_life() -> None:
    board = RiskBoard(half_life=600)
    view = board.add("a", [Reason("new_zone", 40, "zone x", 1000.0)], learning=False, now=1000.0)
    assert view.score == 40
    view = board.add("a", [Reason("beyond_task", 30, "doc", 1000.0)], learning=False, now=1000.0)
    assert view.score == 70
    assert [r.detector for r, _ in view.reasons] == ["new_zone", "beyond_task"]
    assert board.view("a", 1600.0).score == 35  # one half-life later
    assert board.view("a", 1000.0 + 600 * 8).score == 0  # back to normal; the reasons fall away
    assert board.view("a", 1000.0 + 600 * 8).reasons == ()
    board.add("a", [Reason("rate_spike", 30, "x", 2000.0)] * 5, learning=False, now=2000.0)
    assert board.view("a", 2000.0).score == 100


def test_an_unknown_agent_scores_zero_and_is_learning() -> None:
    view = RiskBoard(600).view("nobody", 0.0)
    assert view.score == 0
    assert view.learning
    assert view.reasons == ()


def test_resource_types() -> None:
    assert resource_type_of('Resource::"x"') == "Resource"
    assert resource_type_of("https://api.example/v1/x") == "https://api.example"
    assert isinstance(observe, object)


def test_observations_come_only_from_agent_activity() -> None:
    from tessera.audit.records import Actor, ActorType, AuditEvent, build_record

    def record(type_: str, actor: Actor, **fields: object) -> object:
        event = AuditEvent(type=type_, actor=actor, **fields)  # type: ignore[arg-type]
        return build_record(event, seq=1, record_id="aud_1", ts_ms=1_000_000, prev_hash="0" * 64)

    agent = Actor(ActorType.AGENT, "agt_1")
    denied = record("token.denied", agent, subject="agt_1", data={"error": "invalid_scope"})
    assert observe(denied).denied  # type: ignore[arg-type,union-attr]
    # An unauthenticated claim to be agt_1 must not raise agt_1's risk.
    forged = record(
        "token.denied", Actor(ActorType.AGENT, "agt_1"), subject="agt_1", data={"error": "invalid_client"}
    )
    assert observe(forged) is None  # type: ignore[arg-type]
    assert observe(record("admin.read", Actor(ActorType.ADMIN, "admin"))) is None  # type: ignore[arg-type]
    decision = record(
        "decision",
        Actor(ActorType.AGENT, "gateway"),
        subject="agt_1",
        outcome="deny",
        data={"action": "read", "resource": 'Resource::"d"', "network_zone": "corp", "beyond_task": True},
    )
    obs = observe(decision)  # type: ignore[arg-type]
    assert obs is not None
    assert obs.denied
    assert obs.beyond_task
    assert obs.zone == "corp"
    assert isinstance(obs, Observation)
