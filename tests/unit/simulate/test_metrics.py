"""Recall, precision and time to response, on crafted runs whose answers are known."""

from __future__ import annotations

from tessera.simulate.driver import Outcome
from tessera.simulate.metrics import evaluate
from tessera.simulate.model import Attack, AttackKind, Label, SimRequest

EXFIL = AttackKind.EXFILTRATION
PROBE = AttackKind.PRIVILEGE_PROBING


def request(at: float, agent: int, label: Label = Label.NORMAL, attack_id: int | None = None) -> SimRequest:
    kind = None if attack_id is None else (EXFIL if attack_id == 0 else PROBE)
    return SimRequest(at, agent, "read", "r", "10.20.0.5", label, kind, attack_id)


def ok(at: float, risk: int = 0) -> Outcome:
    return Outcome(True, False, ("permit",), "", risk, at)


def denied(at: float, risk: int, *, response: bool) -> Outcome:
    return Outcome(
        False, response, ("sim-risk-sensitive",) if response else ("forbid-cross-segment",), "", risk, at
    )


def crafted() -> tuple[list[SimRequest], list[Outcome], list[Attack]]:
    """Agent 0: exfiltration caught on its 3rd request. Agent 1: probing denied at once by
    policy but never answered by a response. Agent 2: normal, one false alarm. Agent 3: normal."""
    attacks = [Attack(EXFIL, 0, 100.0, 140.0), Attack(PROBE, 1, 200.0, 230.0)]
    pairs = [
        (request(10, 0), ok(10)),
        (request(100, 0, Label.ATTACK, 0), ok(100, 20)),
        (request(110, 0, Label.ATTACK, 0), ok(110, 45)),
        (request(120, 0, Label.ATTACK, 0), denied(120, 70, response=True)),
        (request(130, 0), denied(130, 75, response=True)),
        (request(140, 0, Label.ATTACK, 0), denied(140, 80, response=True)),
        (request(200, 1, Label.ATTACK, 1), denied(200, 10, response=False)),
        (request(215, 1, Label.ATTACK, 1), denied(215, 20, response=False)),
        (request(230, 1, Label.ATTACK, 1), denied(230, 30, response=False)),
        (request(50, 2), ok(50, 10)),
        (request(60, 2), ok(60, 55)),  # a false alarm: risk over the threshold, nothing malicious
        (request(70, 2), ok(70, 30)),
        (request(80, 3, Label.DRIFT), ok(80, 12)),
    ]
    pairs.sort(key=lambda p: p[0].at)
    return [p[0] for p in pairs], [p[1] for p in pairs], attacks


def test_recall_time_to_denial_and_time_to_response() -> None:
    requests, outcomes, attacks = crafted()
    report = evaluate(requests, outcomes, attacks, {0: "quarantined"}, 4, threshold=50)
    by_kind = {k.kind: k for k in report.kinds}
    exfil, probe = by_kind[EXFIL], by_kind[PROBE]
    assert (exfil.attacks, exfil.detected, exfil.recall) == (1, 1, 1.0)
    assert exfil.median_requests_to_denial == 3.0
    assert exfil.median_requests_to_response == 3.0
    assert exfil.median_seconds_to_response == 20.0
    assert exfil.precision == 1.0
    assert (probe.detected, probe.recall) == (0, 0.0)
    assert probe.median_requests_to_denial == 1.0  # denied by standing policy at once
    assert probe.median_requests_to_response is None
    assert probe.precision is None  # no alarm on that agent at all
    assert report.median_requests_to_denial == 2.0  # median of 3 and 1
    assert report.targets["recall >= 0.9 for each attack kind"] is False


def test_false_alarms_count_against_precision_not_recall() -> None:
    requests, outcomes, attacks = crafted()
    report = evaluate(requests, outcomes, attacks, {}, 4, threshold=50)
    assert report.alarms == 2
    assert report.true_alarms == 1
    assert report.precision == 0.5
    assert report.normal_agents == 2
    assert report.normal_alarmed == 1
    assert report.normal_quarantined == 0
    assert report.drift_requests == 1
    assert report.drift_denied == 0
    # The legitimate request of agent 0 denied during its attack is collateral, not a false positive.
    assert report.collateral_denials == 1
    assert report.normal_response_denials == 0


def test_a_quarantined_normal_agent_misses_the_target() -> None:
    requests, outcomes, attacks = crafted()
    report = evaluate(requests, outcomes, attacks, {2: "quarantined"}, 4, threshold=50)
    assert report.normal_quarantined == 1
    assert report.normal_quarantined_share == 0.5
    assert report.targets["<= 2% of normal agents quarantined"] is False


def test_an_alarm_after_the_grace_period_is_neither_detection_nor_true() -> None:
    requests, outcomes, _attacks = crafted()
    late = [Attack(EXFIL, 0, 100.0, 105.0)]
    # Only the first exfiltration request is "the attack" now; alarms come 15 s later.
    report = evaluate(requests, outcomes, late, {}, 4, threshold=50, grace=10.0)
    assert report.kinds[0].recall == 0.0
    assert report.true_alarms == 0
    report = evaluate(requests, outcomes, late, {}, 4, threshold=50, grace=20.0)
    assert report.kinds[0].recall == 1.0
    assert report.true_alarms == 1


def test_all_targets_met_on_a_clean_run() -> None:
    requests, outcomes, attacks = crafted()
    kept = [(r, o) for r, o in zip(requests, outcomes, strict=True) if r.agent in (0, 3)]
    report = evaluate([r for r, _ in kept], [o for _, o in kept], attacks[:1], {}, 4, threshold=50)
    assert report.targets == {
        "recall >= 0.9 for each attack kind": True,
        "<= 2% of normal agents quarantined": True,
        "median requests to a denial <= 5": True,
    }
