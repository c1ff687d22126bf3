"""Normal work with daily rhythms and noise, legitimate drift, and the attacks, as one labelled timeline."""

from __future__ import annotations

import math
import random

from tessera.simulate.attacks import attack_requests, plan_attacks
from tessera.simulate.fleet import build_fleet, make_resource
from tessera.simulate.model import (
    AgentSpec,
    DriftEvent,
    Fleet,
    Label,
    Scenario,
    SimRequest,
    SimulationConfig,
)

HOUR = 3600.0
DAY = 86400.0
#: Noise in normal work: a resource of the segment the agent has not used before,
#: an action the policy refuses (a denial), a request from another host of its zone.
NEW_RESOURCE_RATE = 0.01
REFUSED_ACTION_RATE = 0.01


def poisson(mean: float, rng: random.Random) -> int:
    """Knuth's method; the means here are small (tens)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def weighted_choice(weights: dict[str, float], rng: random.Random) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def working_resource(agent: AgentSpec, rng: random.Random) -> str:
    """Zipf-like: the first resources of the working set are used the most."""
    weights = [1.0 / (rank + 1) for rank in range(len(agent.working_set))]
    return rng.choices(agent.working_set, weights=weights)[0]


def hour_intensity(agent: AgentSpec, hour_of_day: int) -> float:
    """Batch agents run flat; others ramp up in their first hour and down in their last."""
    if agent.batch:
        return 1.0
    into = (hour_of_day - agent.start_hour) % 24
    if into in (0, agent.hours - 1):
        return 0.5
    return 1.0


def normal_request(
    at: float, index: int, agent: AgentSpec, fleet: Fleet, rng: random.Random, *, drift: set[str]
) -> SimRequest:
    action = weighted_choice(agent.actions, rng)
    resource = working_resource(agent, rng)
    roll = rng.random()
    if roll < NEW_RESOURCE_RATE:
        pool = [r.id for r in fleet.in_segment(agent.segment) if not r.sensitive]
        resource = rng.choice(pool)
        action = "read"
    elif roll < NEW_RESOURCE_RATE + REFUSED_ACTION_RATE:
        action = "delete" if agent.writer else "write"
    label = Label.DRIFT if resource in drift else Label.NORMAL
    return SimRequest(at, index, action, resource, agent.client_ip, label)


def normal_traffic(
    fleet: Fleet, config: SimulationConfig, rng: random.Random, drift: list[DriftEvent]
) -> list[SimRequest]:
    requests: list[SimRequest] = []
    duration = config.days * DAY
    hours = math.ceil(duration / HOUR)
    for index, agent in enumerate(fleet.agents):
        events = sorted((d for d in drift if d.agent == index), key=lambda d: d.at)
        drift_ids: set[str] = set()
        for hour in range(hours):
            hour_of_day = hour % 24
            if not agent.works_at(hour_of_day):
                continue
            # Some hours are busier than others: a jittered rate around the agent's own.
            mean = agent.rate_per_hour * hour_intensity(agent, hour_of_day) * rng.lognormvariate(0.0, 0.3)
            times = sorted(hour * HOUR + rng.random() * HOUR for _ in range(poisson(mean, rng)))
            for at in times:
                if at >= duration:
                    break
                while events and events[0].at <= at:
                    drifted = events.pop(0)
                    agent.working_set.insert(len(agent.working_set) // 2, drifted.resource.id)
                    drift_ids.add(drifted.resource.id)
                requests.append(normal_request(at, index, agent, fleet, rng, drift=drift_ids))
    return requests


def plan_drift(
    fleet: Fleet, config: SimulationConfig, rng: random.Random, exclude: set[int]
) -> list[DriftEvent]:
    """New resources registered mid-run, each taken on by one agent of the segment."""
    candidates = [i for i in range(len(fleet.agents)) if i not in exclude]
    chosen = rng.sample(candidates, k=round(len(candidates) * config.drift_share))
    events: list[DriftEvent] = []
    for serial, index in enumerate(sorted(chosen)):
        agent = fleet.agents[index]
        day = rng.uniform(config.attacks_after_days, max(config.attacks_after_days, config.days - 0.5))
        at = math.floor(day) * DAY + (agent.start_hour + rng.uniform(1, 3)) * HOUR
        if at >= config.days * DAY:
            at = config.attacks_after_days * DAY + agent.start_hour * HOUR
        pool = fleet.in_segment(agent.segment)
        kind = rng.choice(pool).kind
        resource = make_resource(agent.segment, kind, 500 + serial, sensitive=False)
        events.append(DriftEvent(at, index, resource))
    return events


def build_scenario(config: SimulationConfig) -> Scenario:
    """The whole labelled timeline; the same seed gives the same scenario."""
    rng = random.Random(config.seed)  # noqa: S311 - reproducible traffic, not secrets
    fleet = build_fleet(config, rng)
    attacks = plan_attacks(fleet, config, rng)
    drift = plan_drift(fleet, config, rng, exclude={a.agent for a in attacks})
    working_sets = {i: list(a.working_set) for i, a in enumerate(fleet.agents)}
    requests = normal_traffic(fleet, config, rng, drift)
    for i, agent in enumerate(fleet.agents):
        agent.working_set = working_sets[i]  # the fleet as registered; drift is replayed by the driver
    attacks, attack_traffic = attack_requests(fleet, attacks, rng)
    requests.extend(attack_traffic)
    requests.sort(key=lambda r: (r.at, r.agent))
    stats = {
        "requests": len(requests),
        "normal": sum(1 for r in requests if r.label is Label.NORMAL),
        "drift": sum(1 for r in requests if r.label is Label.DRIFT),
        "attack": sum(1 for r in requests if r.label is Label.ATTACK),
    }
    return Scenario(
        fleet=fleet,
        requests=requests,
        attacks=attacks,
        drift=drift,
        start_epoch=config.start_epoch,
        duration=config.days * DAY,
        stats=stats,
    )
