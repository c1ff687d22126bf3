"""Running the real ``tessera`` command (in-process, through Typer's CliRunner) against real servers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tessera.cli.main import app
from tests.support import ServerProcess, free_port


@dataclass
class Cli:
    """Invokes ``tessera …`` with a fixed environment; ``ok``/``fails`` check the output contract."""

    env: dict[str, str | None]
    workdir: Path
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(
        self, *args: str, env: Mapping[str, str | None] | None = None, stdin: str | None = None
    ) -> Result:
        return self.runner.invoke(app, list(args), env={**self.env, **(env or {})}, input=stdin)

    def ok(self, *args: str, env: Mapping[str, str | None] | None = None, stdin: str | None = None) -> str:
        result = self(*args, env=env, stdin=stdin)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr or result.exception!r}"
        assert result.exception is None
        return result.stdout

    def json(self, *args: str, env: Mapping[str, str | None] | None = None, stdin: str | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", env=env, stdin=stdin))

    def fails(self, *args: str, env: Mapping[str, str | None] | None = None, stdin: str | None = None) -> str:
        """Run a command that must fail: non-zero exit, one ``error:`` line on stderr, no traceback."""
        result = self(*args, env=env, stdin=stdin)
        assert result.exit_code != 0, result.stdout
        # An exception that escaped the CLI would show up here instead of SystemExit.
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        return lines[0]


def base_env(home: Path) -> dict[str, str | None]:
    # COLUMNS keeps rich tables wide enough that ids are never folded in assertions.
    return {"TESSERA_HOME": str(home), "TESSERA_ADMIN_TOKEN": None, "TESSERA_CONFIG": None, "COLUMNS": "250"}


@pytest.fixture
def cli(server: ServerProcess, tmp_path: Path) -> Cli:
    """The CLI pointed at a real server, with its admin token in TESSERA_ADMIN_TOKEN."""
    env = base_env(tmp_path / "cli-home")
    env.update(TESSERA_URL=server.url, TESSERA_ADMIN_TOKEN=server.admin_token)
    return Cli(env, tmp_path)


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    """The CLI pointed at a loopback port where nothing listens."""
    env = base_env(tmp_path / "cli-home")
    env.update(TESSERA_URL=f"http://127.0.0.1:{free_port()}", TESSERA_ADMIN_TOKEN="tsr_admin_" + "x" * 40)
    return Cli(env, tmp_path)
