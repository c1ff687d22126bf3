"""A fleet of agents and the resources they work on, drawn from a seeded random source."""

from __future__ import annotations

import ipaddress
import random

from tessera.simulate.model import NETWORK_ZONES, AgentSpec, Fleet, ResourceSpec, SimulationConfig

#: Resource kinds per segment; the first of each list is classified sensitive more often.
KINDS: dict[str, tuple[str, ...]] = {
    "payments": ("ledger", "account", "invoice"),
    "research": ("dataset", "record", "paper"),
    "support": ("customer", "ticket", "article"),
    "operations": ("secret", "host", "runbook"),
}
ROLES: dict[str, str] = {
    "payments": "reconciler",
    "research": "analyst",
    "support": "triage",
    "operations": "operator",
}
SENSITIVE_SHARE = 0.25
SHARED_SHARE = 0.1


def zone_address(zone: str, rng: random.Random) -> str:
    cidr = next(c for c, z in NETWORK_ZONES.items() if z == zone)
    network = ipaddress.ip_network(cidr)
    return str(network[rng.randrange(2, network.num_addresses - 1)])


def make_resource(
    segment: str, kind: str, number: int, sensitive: bool, shared: tuple[str, ...] = ()
) -> ResourceSpec:
    # The id is the resource's URI, as the task's declared resources name it.
    uri = f"https://{segment}.example/{kind}/{number:03d}"
    return ResourceSpec(
        id=uri,
        segment=segment,
        kind=kind,
        classification="sensitive" if sensitive else "internal",
        uri=uri,
        shared_with=shared,
    )


def build_resources(config: SimulationConfig, rng: random.Random) -> dict[str, ResourceSpec]:
    resources: dict[str, ResourceSpec] = {}
    for segment in config.segments:
        kinds = KINDS.get(segment, ("record", "item", "note"))
        others = tuple(s for s in config.segments if s != segment)
        for number in range(config.resources_per_segment):
            kind = kinds[number % len(kinds)]
            sensitive = rng.random() < (SENSITIVE_SHARE * 2 if kind == kinds[0] else SENSITIVE_SHARE / 2)
            shared = (rng.choice(others),) if others and not sensitive and rng.random() < SHARED_SHARE else ()
            resource = make_resource(segment, kind, number, sensitive, shared)
            resources[resource.id] = resource
    return resources


def build_agent(
    index: int, segment: str, pool: list[ResourceSpec], config: SimulationConfig, rng: random.Random
) -> AgentSpec:
    batch = rng.random() < 0.2
    writer = rng.random() < 0.5
    internal = [r.id for r in pool if not r.sensitive]
    sensitive = [r.id for r in pool if r.sensitive]
    working = rng.sample(internal, k=min(len(internal), rng.randint(4, 9)))
    if sensitive and rng.random() < 0.3:
        working.append(rng.choice(sensitive))
    actions = {"read": 0.7, "list": 0.2}
    if writer:
        actions["write"] = 0.15
    owner_number = index % 2 + 1
    return AgentSpec(
        name=f"{segment}-{ROLES.get(segment, 'worker')}-{index:02d}",
        owner=f"{segment}-lead-{owner_number}@example.com",
        segment=segment,
        role=ROLES.get(segment, "worker"),
        writer=writer,
        client_ip=zone_address("cloud" if rng.random() < 0.7 else "corporate", rng),
        start_hour=rng.randint(6, 10),
        hours=rng.randint(8, 10),
        rate_per_hour=round(rng.lognormvariate(2.2, 0.45) * (0.5 if batch else 1.0), 2),
        working_set=working,
        actions=actions,
        batch=batch,
    )


def build_fleet(config: SimulationConfig, rng: random.Random) -> Fleet:
    resources = build_resources(config, rng)
    agents: list[AgentSpec] = []
    for index in range(config.agents):
        segment = config.segments[index % len(config.segments)]
        pool = [r for r in resources.values() if r.segment == segment]
        agents.append(build_agent(index, segment, pool, config, rng))
    return Fleet(agents=agents, resources=resources, segments=config.segments)
