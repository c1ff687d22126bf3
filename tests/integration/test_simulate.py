"""``tessera simulate`` end to end: real servers over HTTP, a short run, the report and the chart."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.simulate.model import NETWORK_ZONES, AttackKind
from tests.support import ServerProcess

SMALL = ["--agents", "8", "--days", "1.5", "--attacks-per-kind", "1", "--seed", "3"]


def run_cli(args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    result = CliRunner().invoke(app, ["simulate", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_a_short_run_on_a_local_server_detects_the_attacks_and_spares_normal_agents(tmp_path: Path) -> None:
    chart = tmp_path / "risk.png"
    data = run_cli([*SMALL, "--chart", str(chart)])
    assert data["server"] == "local (simulated clock)"
    requests = data["requests"]
    assert isinstance(requests, dict)
    assert requests["attack"] > 0
    assert requests["normal"] > 10 * requests["attack"] / 5
    kinds = {k["kind"]: k for k in data["kinds"]}  # type: ignore[attr-defined]
    assert set(kinds) == {k.value for k in AttackKind}
    assert all(k["attacks"] == 1 for k in kinds.values())
    # The detector caught each attack, and no normal agent was quarantined.
    assert [k["kind"] for k in kinds.values() if k["detected"] != 1] == []
    assert data["normal_quarantined"] == 0
    assert data["detector_lagged"] == 0
    assert data["targets_met"] is True
    image = matplotlib.image.imread(chart)
    assert image.shape[1] > 600


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> ServerProcess:
    """A server process on SQLite or PostgreSQL, with the simulated network zones."""
    zones = json.dumps({**NETWORK_ZONES, "127.0.0.0/8": "local"})
    proc = ServerProcess(
        home=tmp_path / "home", database_url=database_url, env={"TESSERA_NETWORK_ZONES": zones}
    )
    return proc.start()


def test_url_drives_a_running_server_in_real_time(server: ServerProcess) -> None:
    try:
        data = run_cli(
            [
                "--agents",
                "5",
                "--days",
                "1.5",
                "--attacks-per-kind",
                "1",
                "--url",
                server.url,
                "--speed",
                "0",
            ],
            env={"TESSERA_ADMIN_TOKEN": server.admin_token},
        )
    finally:
        server.stop()
    assert data["server"] == server.url
    requests = data["requests"]
    assert isinstance(requests, dict)
    attacks = data["attacks"]
    assert isinstance(attacks, list)
    assert len(attacks) == 5
    # Every request was answered by the server (a decision, not a transport failure).
    assert data["legit_requests"] + sum(a["requests"] for a in attacks) == requests["requests"]


def test_url_without_an_admin_token_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--url", "http://127.0.0.1:9", "--agents", "5", "--attacks-per-kind", "1"],
        env={"TESSERA_ADMIN_TOKEN": "", "TESSERA_HOME": str(tmp_path / "nowhere")},
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: no admin token")


def test_too_few_agents_for_the_attacks_is_refused() -> None:
    result = CliRunner().invoke(app, ["simulate", "--agents", "9", "--attacks-per-kind", "2"])
    assert result.exit_code == 1
    assert result.output == "error: 10 attacks need at least as many agents (got 9)\n"


def test_url_of_no_server_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--url", "http://127.0.0.1:9", "--agents", "5", "--attacks-per-kind", "1", "--json"],
        env={"TESSERA_ADMIN_TOKEN": "tsr_admin_x"},
    )
    assert result.exit_code == 1
    assert (
        result.output
        == "error: cannot connect to tessera at http://127.0.0.1:9 (is the server running? set TESSERA_URL)\n"
    )


def test_a_wrong_admin_token_is_one_line_error(sqlite_server: ServerProcess) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--url", sqlite_server.url, "--agents", "5", "--attacks-per-kind", "1", "--speed", "0"],
        env={"TESSERA_ADMIN_TOKEN": "tsr_admin_forged"},
    )
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "error: POST /admin/v1/policies: unauthorized: "
        "admin credential required (Authorization: Bearer <admin or personal token>)"
    )
