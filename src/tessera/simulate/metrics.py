"""Detection quality from a run: recall, precision and time to response per attack kind.

Definitions (docs/continuous-verification.md, "Simulation"):

- An agent is *alarmed* after a request when its risk is at or above the response
  threshold, or the request was denied as a response (a risk rule, quarantine, a
  revoked token). An *alarm* is a run of consecutive alarmed requests of one agent.
- An attack is *detected* if its agent is alarmed between the attack's first
  request and ``grace`` seconds after its last.
- An alarm is *true* if it starts in such a window, else *false*. Precision per kind
  counts the alarms on that kind's attacked agents; the overall precision counts
  every alarm in the fleet, false alarms on agents never attacked included.
- Requests to denial: the position (1-based) of the first denied malicious request,
  counting malicious requests only; requests to response: the same for the first
  denial that is a response. Seconds to response: from the first malicious request
  to the first alarm.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from tessera.simulate.driver import Outcome
from tessera.simulate.model import Attack, AttackKind, Label, SimRequest

GRACE_SECONDS = 900.0
INACTIVE_STATES = frozenset({"quarantined", "suspended", "decommissioned"})


@dataclass(frozen=True, slots=True)
class AttackResult:
    kind: AttackKind
    agent: int
    requests: int
    detected: bool
    requests_to_denial: int | None
    requests_to_response: int | None
    seconds_to_response: float | None


@dataclass(frozen=True, slots=True)
class KindSummary:
    kind: AttackKind
    attacks: int
    detected: int
    recall: float
    precision: float | None
    median_requests_to_denial: float | None
    median_requests_to_response: float | None
    median_seconds_to_response: float | None


@dataclass
class Report:
    kinds: list[KindSummary]
    attacks: list[AttackResult]
    normal_agents: int
    normal_quarantined: int
    normal_alarmed: int
    legit_requests: int
    normal_response_denials: int  # legitimate requests of never-attacked agents denied as a response
    collateral_denials: int  # legitimate requests of attacked agents denied as a response (quarantine)
    drift_requests: int
    drift_denied: int
    alarms: int
    true_alarms: int
    median_requests_to_denial: float | None
    median_requests_to_response: float | None
    targets: dict[str, bool] = field(default_factory=dict)

    @property
    def normal_quarantined_share(self) -> float:
        return self.normal_quarantined / self.normal_agents if self.normal_agents else 0.0

    @property
    def precision(self) -> float | None:
        return self.true_alarms / self.alarms if self.alarms else None


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def alarms_of(
    requests: Sequence[SimRequest], outcomes: Sequence[Outcome], threshold: int
) -> dict[int, list[float]]:
    """Each agent's alarm start times (simulated seconds)."""
    starts: dict[int, list[float]] = {}
    alarmed: dict[int, bool] = {}
    for request, outcome in zip(requests, outcomes, strict=True):
        now_alarmed = outcome.risk >= threshold or outcome.response
        if now_alarmed and not alarmed.get(request.agent, False):
            starts.setdefault(request.agent, []).append(outcome.at)
        alarmed[request.agent] = now_alarmed
    return starts


def score_attack(
    attack_id: int,
    attack: Attack,
    requests: Sequence[SimRequest],
    outcomes: Sequence[Outcome],
    *,
    threshold: int,
    grace: float,
) -> AttackResult:
    window_end = attack.end + grace
    malicious = [o for r, o in zip(requests, outcomes, strict=True) if r.attack_id == attack_id]
    in_window = [
        o
        for r, o in zip(requests, outcomes, strict=True)
        if r.agent == attack.agent and attack.start <= o.at <= window_end
    ]
    first_alarm = next((o.at for o in in_window if o.risk >= threshold or o.response), None)
    to_denial = next((n for n, o in enumerate(malicious, 1) if not o.allowed), None)
    to_response = next((n for n, o in enumerate(malicious, 1) if o.response), None)
    return AttackResult(
        kind=attack.kind,
        agent=attack.agent,
        requests=len(malicious),
        detected=first_alarm is not None,
        requests_to_denial=to_denial,
        requests_to_response=to_response,
        seconds_to_response=None if first_alarm is None else first_alarm - attack.start,
    )


def evaluate(
    requests: Sequence[SimRequest],
    outcomes: Sequence[Outcome],
    attacks: Sequence[Attack],
    final_states: dict[int, str],
    agents: int,
    *,
    threshold: int,
    grace: float = GRACE_SECONDS,
) -> Report:
    results = [
        score_attack(i, a, requests, outcomes, threshold=threshold, grace=grace)
        for i, a in enumerate(attacks)
    ]
    starts = alarms_of(requests, outcomes, threshold)
    windows: dict[int, list[tuple[float, float, AttackKind]]] = {}
    for attack in attacks:
        windows.setdefault(attack.agent, []).append((attack.start, attack.end + grace, attack.kind))
    true_by_kind: dict[AttackKind, int] = {}
    false_by_agent: dict[int, int] = {}
    for agent, times in starts.items():
        for at in times:
            kind = next((k for s, e, k in windows.get(agent, []) if s <= at <= e), None)
            if kind is None:
                false_by_agent[agent] = false_by_agent.get(agent, 0) + 1
            else:
                true_by_kind[kind] = true_by_kind.get(kind, 0) + 1
    kinds: list[KindSummary] = []
    for kind in AttackKind:
        mine = [r for r in results if r.kind is kind]
        if not mine:
            continue
        true = true_by_kind.get(kind, 0)
        false = sum(false_by_agent.get(a.agent, 0) for a in attacks if a.kind is kind)
        kinds.append(
            KindSummary(
                kind=kind,
                attacks=len(mine),
                detected=sum(r.detected for r in mine),
                recall=sum(r.detected for r in mine) / len(mine),
                precision=true / (true + false) if true + false else None,
                median_requests_to_denial=_median([r.requests_to_denial for r in mine]),
                median_requests_to_response=_median([r.requests_to_response for r in mine]),
                median_seconds_to_response=_median([r.seconds_to_response for r in mine]),
            )
        )
    attacked = {a.agent for a in attacks}
    normal = [i for i in range(agents) if i not in attacked]
    legit = [(r, o) for r, o in zip(requests, outcomes, strict=True) if r.label is not Label.ATTACK]
    drift = [(r, o) for r, o in legit if r.label is Label.DRIFT]
    report = Report(
        kinds=kinds,
        attacks=results,
        normal_agents=len(normal),
        normal_quarantined=sum(final_states.get(i, "") in INACTIVE_STATES for i in normal),
        normal_alarmed=sum(1 for i in normal if starts.get(i)),
        legit_requests=len(legit),
        normal_response_denials=sum(1 for r, o in legit if o.response and r.agent not in attacked),
        collateral_denials=sum(1 for r, o in legit if o.response and r.agent in attacked),
        drift_requests=len(drift),
        drift_denied=sum(1 for _, o in drift if not o.allowed),
        alarms=sum(len(t) for t in starts.values()),
        true_alarms=sum(true_by_kind.values()),
        median_requests_to_denial=_median([r.requests_to_denial for r in results]),
        median_requests_to_response=_median([r.requests_to_response for r in results]),
    )
    report.targets = {
        "recall >= 0.9 for each attack kind": all(k.recall >= 0.9 for k in kinds),
        "<= 2% of normal agents quarantined": report.normal_quarantined_share <= 0.02,
        "median requests to a denial <= 5": (report.median_requests_to_denial or 99) <= 5,
    }
    return report
