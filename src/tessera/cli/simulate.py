"""``tessera simulate``: labelled fleet traffic against a server, scored for detection quality.

By default it starts its own server (in this process, loopback, a temporary data
directory) on a simulated clock it fast-forwards; ``--url`` drives a running
server in real time instead. The logic lives in ``tessera.simulate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tessera.cli.client import CliError, admin_token, transport_error
from tessera.cli.output import emit_json, line, note, table
from tessera.simulate.api import ServerError
from tessera.simulate.model import AttackKind, SimulationConfig
from tessera.simulate.run import DEFAULT_THRESHOLD, SimulationResult
from tessera.simulate.run import simulate as run_simulation
from tessera.simulate.summary import result_json

DEFAULTS = SimulationConfig()


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def _print_summary(result: SimulationResult) -> None:
    report = result.report
    stats = result.scenario.stats
    line(
        f"{result.config.agents} agents, {result.config.days:g} simulated days, seed {result.config.seed}: "
        f"{stats['requests']} requests ({stats['normal']} normal, {stats['drift']} drift, "
        f"{stats['attack']} malicious) in {result.seconds:.0f} s against {result.server}"
    )
    table(
        "Detection per attack kind",
        [
            "attack",
            "detected",
            "recall",
            "precision",
            "requests to denial",
            "to response",
            "seconds to response",
        ],
        [
            [
                k.kind.value,
                f"{k.detected}/{k.attacks}",
                _number(k.recall),
                _number(k.precision),
                _number(k.median_requests_to_denial, 1),
                _number(k.median_requests_to_response, 1),
                _number(k.median_seconds_to_response, 0),
            ]
            for k in report.kinds
        ],
    )
    table(
        "Normal traffic",
        ["measure", "value"],
        [
            ["normal agents quarantined", f"{report.normal_quarantined}/{report.normal_agents}"],
            ["normal agents ever alarmed", f"{report.normal_alarmed}/{report.normal_agents}"],
            ["normal agents' requests denied as a response", str(report.normal_response_denials)],
            ["attacked agents' own requests denied after detection", str(report.collateral_denials)],
            ["drift requests denied", f"{report.drift_denied}/{report.drift_requests}"],
            ["alarm precision (fleet-wide)", _number(report.precision)],
            ["median requests to a denial (all attacks)", _number(report.median_requests_to_denial, 1)],
            ["median requests to a response denial", _number(report.median_requests_to_response, 1)],
        ],
    )
    table(
        "Targets", ["target", "met"], [[name, "yes" if ok else "NO"] for name, ok in report.targets.items()]
    )


def simulate(
    *,
    agents: Annotated[int, typer.Option(min=5, max=1000, help="Agents in the fleet.")] = DEFAULTS.agents,
    days: Annotated[float, typer.Option(min=1.5, max=30, help="Simulated days.")] = DEFAULTS.days,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same traffic.")] = DEFAULTS.seed,
    attacks_per_kind: Annotated[
        int, typer.Option(min=1, max=50, help="Attacks of each kind, each on its own agent.")
    ] = DEFAULTS.attacks_per_kind,
    threshold: Annotated[
        int, typer.Option(min=1, max=100, help="Risk at which an agent counts as alarmed.")
    ] = DEFAULT_THRESHOLD,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Drive this running server in real time (admin token from TESSERA_ADMIN_TOKEN or "
            "TESSERA_HOME) instead of starting a local one on a simulated clock.",
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            min=0,
            help="With --url: simulated seconds per real second (1 = real time, 0 = as fast as answered).",
        ),
    ] = 1.0,
    chart: Annotated[
        Path | None, typer.Option("--chart", metavar="PATH", help="Write a PNG of one attacked agent's risk.")
    ] = None,
    chart_attack: Annotated[
        AttackKind, typer.Option("--chart-attack", help="Which attack's agent the chart follows.")
    ] = AttackKind.EXFILTRATION,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if a target is missed.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Simulate a fleet (normal work, legitimate drift, five attacks) and report detection quality."""
    if attacks_per_kind * len(AttackKind) > agents:
        raise CliError(
            f"{attacks_per_kind * len(AttackKind)} attacks need at least as many agents (got {agents})"
        )
    config = SimulationConfig(seed=seed, agents=agents, days=days, attacks_per_kind=attacks_per_kind)
    token = None
    if url is not None:
        url = url.rstrip("/")
        token = admin_token()
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=json_output,
        transient=False,
    )
    with progress:
        task = progress.add_task("requests", total=None)

        def advance(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                progress.update(task, completed=done, total=total)

        try:
            result = run_simulation(
                config,
                url=url,
                admin_token=token,
                threshold=threshold,
                progress=advance,
                watch=chart_attack,
                speed=speed,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise transport_error(exc, url or "the local server") from None
        except ServerError as exc:
            raise CliError(str(exc)) from None
    if chart is not None:
        result.write_chart(chart)
    if json_output:
        data = result_json(result)
        if chart is not None:
            data["chart"] = str(chart)
        emit_json(data)
    else:
        _print_summary(result)
        if chart is not None:
            note(f"chart written to {chart}")
    if strict and not all(result.report.targets.values()):
        raise CliError("a detection target was missed (see the table above)")
