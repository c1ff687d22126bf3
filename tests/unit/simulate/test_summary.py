"""The report as JSON and as the table people read, from a crafted run."""

from __future__ import annotations

import json

import pytest

from tessera.cli.simulate import _print_summary
from tessera.simulate.driver import Outcome, RunRecord
from tessera.simulate.metrics import evaluate
from tessera.simulate.model import AttackKind, Label, SimulationConfig
from tessera.simulate.run import SimulationResult
from tessera.simulate.summary import result_json
from tessera.simulate.traffic import build_scenario


def crafted_result() -> SimulationResult:
    """Every attack is answered by a risk rule from its second request; normal work is permitted."""
    config = SimulationConfig(seed=2, agents=10, days=1.5, attacks_per_kind=1)
    scenario = build_scenario(config)
    seen: dict[int, int] = {}
    outcomes = []
    for request in scenario.requests:
        if request.label is Label.ATTACK and request.attack_id is not None:
            seen[request.attack_id] = seen.get(request.attack_id, 0) + 1
            caught = seen[request.attack_id] >= 2
            outcomes.append(
                Outcome(
                    not caught,
                    caught,
                    ("sim-risk-task-only",) if caught else (),
                    "",
                    60 if caught else 30,
                    request.at,
                )
            )
        else:
            outcomes.append(Outcome(True, False, ("sim-read-own-segment",), "", 0, request.at))
    record = RunRecord(outcomes, {}, dict.fromkeys(range(10), "active"), [f"agt_{i}" for i in range(10)])
    report = evaluate(scenario.requests, outcomes, scenario.attacks, record.final_states, 10, threshold=50)
    return SimulationResult(config, scenario, record, report, 50, 1.0, "local (simulated clock)")


def test_json_carries_every_figure_and_the_targets() -> None:
    data = result_json(crafted_result())
    json.dumps(data)  # plain JSON
    assert [k["kind"] for k in data["kinds"]] == [k.value for k in AttackKind]
    assert all(k["recall"] == 1.0 and k["median_requests_to_denial"] == 2.0 for k in data["kinds"])
    assert data["normal_quarantined"] == 0
    assert data["targets_met"] is True
    assert {a["agent"] for a in data["attacks"]} <= {f"agt_{i}" for i in range(10)}


def test_the_table_names_each_kind_and_target(capsys: pytest.CaptureFixture[str]) -> None:
    _print_summary(crafted_result())
    out = capsys.readouterr().out
    assert "10 agents, 1.5 simulated days, seed 2" in out
    for kind in AttackKind:
        assert kind.value in out
    assert "normal agents quarantined" in out
    assert "NO" not in out.split("Targets", 1)[1]
