"""The scenario generator: labels, daily rhythms, attacks and drift, determinism with a seed."""

from __future__ import annotations

import ipaddress
from collections import Counter

from tessera.policy.context import ContextBuilder
from tessera.simulate.model import NETWORK_ZONES, AttackKind, Label, SimulationConfig
from tessera.simulate.traffic import DAY, HOUR, build_scenario

CONFIG = SimulationConfig(seed=11, agents=20, days=2.5, attacks_per_kind=2)


def test_same_seed_same_scenario_and_another_seed_another() -> None:
    first, second = build_scenario(CONFIG), build_scenario(CONFIG)
    assert first.requests == second.requests
    assert first.attacks == second.attacks
    assert [a.working_set for a in first.fleet.agents] == [a.working_set for a in second.fleet.agents]
    other = build_scenario(SimulationConfig(seed=12, agents=20, days=2.5, attacks_per_kind=2))
    assert other.requests != first.requests


def test_requests_are_in_time_order_and_labelled() -> None:
    scenario = build_scenario(CONFIG)
    times = [r.at for r in scenario.requests]
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < scenario.duration + DAY
    for request in scenario.requests:
        if request.label is Label.ATTACK:
            assert request.attack is not None
            assert request.attack_id is not None
            attack = scenario.attacks[request.attack_id]
            assert attack.kind is request.attack
            assert attack.agent == request.agent
            assert attack.start <= request.at <= attack.end
        else:
            assert request.attack is None
            assert request.attack_id is None
    counts = Counter(r.label for r in scenario.requests)
    assert counts[Label.NORMAL] > 10 * counts[Label.ATTACK] / 2
    assert scenario.stats["requests"] == len(scenario.requests)


def test_every_kind_attacks_distinct_agents_after_the_learning_period() -> None:
    scenario = build_scenario(CONFIG)
    kinds = Counter(a.kind for a in scenario.attacks)
    assert kinds == dict.fromkeys(AttackKind, 2)
    assert len({a.agent for a in scenario.attacks}) == len(scenario.attacks)
    assert all(a.start >= CONFIG.attacks_after_days * DAY for a in scenario.attacks)
    for attack_id, attack in enumerate(scenario.attacks):
        mine = [r for r in scenario.requests if r.attack_id == attack_id]
        assert len(mine) >= 20
        assert mine[0].at == attack.start
        assert mine[-1].at == attack.end


def test_business_agents_work_their_hours_and_batch_agents_around_the_clock() -> None:
    scenario = build_scenario(SimulationConfig(seed=3, agents=30, days=3.0, attacks_per_kind=1))
    for index, agent in enumerate(scenario.fleet.agents):
        hours = Counter(
            int(r.at % DAY // HOUR)
            for r in scenario.requests
            if r.agent == index and r.label is not Label.ATTACK
        )
        if agent.batch:
            assert len(hours) > 12  # spread over the day
        else:
            assert all(agent.works_at(hour) for hour in hours), (agent.name, hours)


def test_attacks_look_like_their_kind() -> None:
    scenario = build_scenario(CONFIG)
    fleet = scenario.fleet
    zones = ContextBuilder(NETWORK_ZONES)
    for attack_id, attack in enumerate(scenario.attacks):
        agent = fleet.agents[attack.agent]
        mine = [r for r in scenario.requests if r.attack_id == attack_id]
        if attack.kind is AttackKind.STOLEN_TOKEN:
            assert {zones.zone_of(r.client_ip) for r in mine} <= {"partner", "unknown"}
            assert zones.zone_of(agent.client_ip) in {"corporate", "cloud"}
        elif attack.kind is AttackKind.EXFILTRATION:
            assert all(r.action == "read" and r.resource not in agent.working_set for r in mine)
            assert sum(fleet.resources[r.resource].sensitive for r in mine) > len(mine) / 2
        elif attack.kind is AttackKind.PRIVILEGE_PROBING:
            assert all(r.action in {"delete", "write"} for r in mine)
            assert mine[-1].at - mine[0].at < 30 * 20
        elif attack.kind is AttackKind.RUNAWAY_LOOP:
            usual = agent.rate_per_hour
            assert len(mine) / ((mine[-1].at - mine[0].at) / HOUR) > 20 * usual
            assert {r.resource for r in mine} <= set(agent.working_set)
        else:
            assert all(fleet.resources[r.resource].segment != agent.segment for r in mine)


def test_drift_is_new_registered_resources_used_only_after_registration() -> None:
    scenario = build_scenario(CONFIG)
    assert scenario.drift
    attacked = scenario.attacked_agents()
    for event in scenario.drift:
        assert event.agent not in attacked
        assert event.resource.id not in scenario.fleet.resources
        assert event.resource.segment == scenario.fleet.agents[event.agent].segment
        uses = [r for r in scenario.requests if r.resource == event.resource.id]
        assert all(r.label is Label.DRIFT and r.agent == event.agent and r.at >= event.at for r in uses)
    assert any(r.label is Label.DRIFT for r in scenario.requests)


def test_normal_traffic_has_noise_new_resources_and_refused_actions() -> None:
    scenario = build_scenario(SimulationConfig(seed=5, agents=30, days=3.0, attacks_per_kind=1))
    normal = [r for r in scenario.requests if r.label is Label.NORMAL]
    outside = [r for r in normal if r.resource not in scenario.fleet.agents[r.agent].working_set]
    refused = [
        r
        for r in normal
        if r.action == "delete" or (r.action == "write" and not scenario.fleet.agents[r.agent].writer)
    ]
    assert 0 < len(outside) < 0.05 * len(normal)
    assert 0 < len(refused) < 0.05 * len(normal)


def test_fleet_addresses_are_in_the_configured_zones() -> None:
    scenario = build_scenario(CONFIG)
    networks = [ipaddress.ip_network(c) for c in NETWORK_ZONES]
    for agent in scenario.fleet.agents:
        assert any(ipaddress.ip_address(agent.client_ip) in n for n in networks)
        assert len(agent.working_set) >= 4
        assert all(scenario.fleet.resources[r].segment == agent.segment for r in agent.working_set)
