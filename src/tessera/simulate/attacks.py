"""The five attacks, each on its own agent, after the learning period.

None is built to be trivially caught: an attacker paces its requests, mixes in
what the agent normally touches and runs while the agent also does its real work.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Callable

from tessera.simulate.model import (
    NETWORK_ZONES,
    OUTSIDE_NETWORK,
    AgentSpec,
    Attack,
    AttackKind,
    Fleet,
    Label,
    SimRequest,
    SimulationConfig,
)

HOUR = 3600.0
DAY = 86400.0


def plan_attacks(fleet: Fleet, config: SimulationConfig, rng: random.Random) -> list[Attack]:
    """``attacks_per_kind`` attacks of each kind on distinct agents, at a working hour after learning."""
    kinds = list(AttackKind)
    needed = len(kinds) * config.attacks_per_kind
    if needed > len(fleet.agents):
        raise ValueError(
            f"{needed} attacks need at least {needed} agents (the fleet has {len(fleet.agents)})"
        )
    victims = rng.sample(range(len(fleet.agents)), k=needed)
    first_day = math.ceil(config.attacks_after_days)
    last_day = max(first_day, math.ceil(config.days) - 1)
    attacks: list[Attack] = []
    for n, index in enumerate(victims):
        agent = fleet.agents[index]
        day = rng.randint(first_day, last_day)
        hour = agent.start_hour + rng.uniform(1.0, max(1.5, agent.hours - 2.0))
        start = min(day * DAY + hour * HOUR, config.days * DAY - 2 * HOUR)
        start = max(start, config.attacks_after_days * DAY)
        attacks.append(Attack(kinds[n % len(kinds)], index, start, start))
    return attacks


def _outside_address(rng: random.Random) -> str:
    network = ipaddress.ip_network(OUTSIDE_NETWORK)
    return str(network[rng.randrange(2, network.num_addresses - 1)])


def _new_zone_address(agent: AgentSpec, rng: random.Random) -> str:
    """The partner zone, or outside every zone: somewhere this agent never came from."""
    if rng.random() < 0.5:
        return _outside_address(rng)
    network = ipaddress.ip_network(next(c for c, z in NETWORK_ZONES.items() if z == "partner"))
    return str(network[rng.randrange(2, network.num_addresses - 1)])


Step = tuple[float, str, str, str]  # (gap before it in seconds, action, resource id, client ip)


def stolen_token(agent: AgentSpec, fleet: Fleet, rng: random.Random) -> list[Step]:
    """Someone replays the agent's token from elsewhere, browsing what it can reach."""
    ip = _new_zone_address(agent, rng)
    pool = [r.id for r in fleet.in_segment(agent.segment)]
    steps: list[Step] = []
    for _ in range(rng.randint(20, 30)):
        resource = rng.choice(agent.working_set) if rng.random() < 0.5 else rng.choice(pool)
        steps.append((rng.uniform(15, 90), rng.choice(("read", "read", "list")), resource, ip))
    return steps


def exfiltration(agent: AgentSpec, fleet: Fleet, rng: random.Random) -> list[Step]:
    """A prompt-injected agent reads sensitive records its task never named, from its usual host."""
    segment = fleet.in_segment(agent.segment)
    sensitive = [r.id for r in segment if r.sensitive and r.id not in agent.working_set]
    others = [r.id for r in segment if r.id not in agent.working_set]
    steps: list[Step] = []
    for _ in range(rng.randint(20, 30)):
        resource = rng.choice(sensitive) if sensitive and rng.random() < 0.7 else rng.choice(others)
        steps.append((rng.uniform(5, 45), "read", resource, agent.client_ip))
    return steps


def privilege_probing(agent: AgentSpec, fleet: Fleet, rng: random.Random) -> list[Step]:
    """A burst of actions the agent is not allowed, on its own and nearby resources."""
    pool = [r.id for r in fleet.in_segment(agent.segment)]
    steps: list[Step] = []
    for _ in range(rng.randint(20, 30)):
        action = rng.choice(("delete", "delete", "write" if not agent.writer else "delete"))
        resource = rng.choice(agent.working_set) if rng.random() < 0.5 else rng.choice(pool)
        steps.append((rng.uniform(2, 20), action, resource, agent.client_ip))
    return steps


def runaway_loop(agent: AgentSpec, fleet: Fleet, rng: random.Random) -> list[Step]:
    """A loop that repeats a small cycle of the agent's normal work, far faster than usual."""
    cycle = [
        (rng.choice(list(agent.actions)), rng.choice(agent.working_set)) for _ in range(rng.randint(1, 3))
    ]
    steps: list[Step] = []
    for n in range(rng.randint(200, 300)):
        action, resource = cycle[n % len(cycle)]
        steps.append((rng.uniform(0.5, 3.0), action, resource, agent.client_ip))
    return steps


def lateral_movement(agent: AgentSpec, fleet: Fleet, rng: random.Random) -> list[Step]:
    """Reaching into other segments: first what is shared with this one, then beyond."""
    foreign = [r for r in fleet.resources.values() if r.segment != agent.segment]
    shared = [r.id for r in foreign if agent.segment in r.shared_with]
    steps: list[Step] = []
    for n in range(rng.randint(20, 30)):
        near = shared and (n < 3 or rng.random() < 0.3)
        resource = rng.choice(shared) if near else rng.choice(foreign).id
        steps.append((rng.uniform(10, 60), rng.choice(("read", "list")), resource, agent.client_ip))
    return steps


PLAYS: dict[AttackKind, Callable[[AgentSpec, Fleet, random.Random], list[Step]]] = {
    AttackKind.STOLEN_TOKEN: stolen_token,
    AttackKind.EXFILTRATION: exfiltration,
    AttackKind.PRIVILEGE_PROBING: privilege_probing,
    AttackKind.RUNAWAY_LOOP: runaway_loop,
    AttackKind.LATERAL_MOVEMENT: lateral_movement,
}


def attack_requests(
    fleet: Fleet, planned: list[Attack], rng: random.Random
) -> tuple[list[Attack], list[SimRequest]]:
    """The labelled requests of each attack, and the attacks with their end times."""
    attacks: list[Attack] = []
    requests: list[SimRequest] = []
    for attack_id, attack in enumerate(planned):
        agent = fleet.agents[attack.agent]
        at = attack.start
        for n, (gap, action, resource, ip) in enumerate(PLAYS[attack.kind](agent, fleet, rng)):
            at += gap if n else 0.0
            requests.append(
                SimRequest(at, attack.agent, action, resource, ip, Label.ATTACK, attack.kind, attack_id)
            )
        attacks.append(Attack(attack.kind, attack.agent, attack.start, at))
    return attacks, requests
