"""One simulation from end to end: build the scenario, drive a server, score the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tessera.simulate.api import TesseraApi
from tessera.simulate.chart import ChartData, write_chart
from tessera.simulate.driver import NO_TOKEN, Driver, RealTime, RunRecord
from tessera.simulate.local_server import LocalServer
from tessera.simulate.metrics import Report, evaluate
from tessera.simulate.model import AttackKind, Scenario, SimulationConfig
from tessera.simulate.traffic import build_scenario

DEFAULT_THRESHOLD = 50  # the default playbooks step up at 50 and quarantine at 80
STOPPED_POLICY = "forbid-inactive-agents"
Progress = Callable[[int, int], None]


@dataclass
class SimulationResult:
    config: SimulationConfig
    scenario: Scenario
    record: RunRecord
    report: Report
    threshold: int
    seconds: float
    server: str  # "local (simulated clock)" or the URL driven
    watch: AttackKind = AttackKind.EXFILTRATION

    def chart_data(self) -> ChartData:
        """The first attack of the watched kind: its agent's risk over the whole run."""
        kind = self.watch
        attack = next((a for a in self.scenario.attacks if a.kind is kind), None)
        agent = attack.agent if attack is not None else 0
        spec = self.scenario.fleet.agents[agent]
        requests = self.scenario.requests
        mine = [o for r, o in zip(requests, self.record.outcomes, strict=True) if r.agent == agent]
        responses = [o.at for o in mine if o.response]
        # The first request turned away because the agent itself was stopped.
        stopped = next((o.at for o in mine if STOPPED_POLICY in o.policies or o.error == NO_TOKEN), None)
        title = f"{spec.name}: risk over {self.config.days:g} simulated days"
        if attack is not None:
            title += f" ({kind.value.replace('_', ' ')} from hour {attack.start / 3600:.1f})"
        return ChartData(
            title=title,
            points=self.record.risk_trace.get(agent, []),
            responses=responses,
            attack=(attack.start, attack.end) if attack is not None else None,
            threshold=self.threshold,
            quarantined_at=stopped,
        )

    def write_chart(self, path: Path) -> Path:
        return write_chart(self.chart_data(), path)


def simulate(
    config: SimulationConfig,
    *,
    url: str | None = None,
    admin_token: str | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    server_settings: dict[str, Any] | None = None,
    progress: Progress | None = None,
    watch: AttackKind = AttackKind.EXFILTRATION,
    speed: float = 1.0,
) -> SimulationResult:
    """Run ``config`` on a fresh local server with a simulated clock, or on ``url`` in real time."""
    scenario = build_scenario(config)
    started = time.monotonic()
    local: LocalServer | None = None
    if url is None:
        local = LocalServer(config.start_epoch, settings=server_settings).start()
        api = TesseraApi(local.url, local.admin_token, local.now)
        clock: LocalServer | RealTime = local
    else:
        if not admin_token:
            raise ValueError("driving an existing server needs its admin token")
        api = TesseraApi(url, admin_token, time.time)
        clock = RealTime(speed)
        # Real time: the scenario's timeline starts now, paced at ``speed``.
        scenario.start_epoch = time.time()
    watched = next((a.agent for a in scenario.attacks if a.kind is watch), None)
    try:
        driver = Driver(
            api,
            clock,
            scenario,
            token_lifetime=config.token_lifetime,
            # Between requests the risk is read only where the simulator moves the clock.
            watch=watched if local is not None else None,
        )
        driver.setup()
        total = len(scenario.requests)
        record = driver.run(None if progress is None else lambda done: progress(done, total))
        if local is not None:
            record.lagged = local.lagged
    finally:
        api.close()
        if local is not None:
            local.stop()
    report = evaluate(
        scenario.requests,
        record.outcomes,
        scenario.attacks,
        record.final_states,
        len(scenario.fleet.agents),
        threshold=threshold,
    )
    return SimulationResult(
        config=config,
        scenario=scenario,
        record=record,
        report=report,
        threshold=threshold,
        seconds=time.monotonic() - started,
        server=url or "local (simulated clock)",
        watch=watch,
    )
