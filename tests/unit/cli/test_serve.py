"""``tessera serve``: the one-time bootstrap in the parent, and the real command in a subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tessera.cli.serve import bootstrap, load_settings
from tessera.config import Settings
from tessera.runtime import Runtime
from tests.support import free_port
from tests.unit.cli.conftest import Cli, base_env


def test_bootstrap_creates_the_admin_token_once(settings: Settings) -> None:
    token = bootstrap(settings)
    assert token is not None
    path = settings.admin_token_path
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.master_key_path.exists() or settings.master_key is not None
    assert bootstrap(settings) is None
    assert path.read_text().strip() == token
    runtime = Runtime(settings)
    try:
        assert runtime.start(background=False) is None
        assert runtime.admin.verify(token)
        assert len(runtime.keyring().keys) == 1  # the signing key was made once, too
    finally:
        runtime.stop()


def test_load_settings_applies_the_command_line_overrides() -> None:
    settings = load_settings("127.0.0.2", 9999, 3)
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.2", 9999, 3)
    assert settings.issuer_url == "http://127.0.0.2:9999"


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    cli = Cli(base_env(tmp_path / "home"), tmp_path)
    assert cli.fails("serve", "--port", "0").startswith("error: invalid setting port: ")
    assert cli.fails("serve", "--workers", "0").startswith("error: invalid setting workers: ")
    assert not (tmp_path / "home").exists()  # nothing was bootstrapped


@contextmanager
def serving(args: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tessera.cli", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not healthy: {log.read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(TESSERA_HOME=str(home), TESSERA_CHANGE_POLL_INTERVAL="0.05", **extra)
    return env


def test_serve_json_on_the_default_sqlite_store(tmp_path: Path) -> None:
    home, port, log = tmp_path / "home", free_port(), tmp_path / "serve.log"
    with serving(["--json"], clean_env(home), log, port):
        url = f"http://127.0.0.1:{port}"
        token = (home / "admin-token").read_text().strip()
        meta = httpx.get(f"{url}/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == url
        keys = httpx.get(f"{url}/admin/v1/keys", headers={"Authorization": f"Bearer {token}"})
        assert keys.status_code == 200
    assert (home / "tessera.db").exists()
    first = log.read_text().splitlines()[0]
    assert first.startswith("{")
    # --json prints one object; read up to its closing brace.
    text = log.read_text()
    announced = json.loads(text[: text.index("}") + 1])
    assert announced == {"url": url, "admin_token": token, "admin_token_path": str(home / "admin-token")}


def test_serve_with_workers_bootstraps_once(tmp_path: Path, database_url: str) -> None:
    home, port, log = tmp_path / "home", free_port(), tmp_path / "serve.log"
    env = clean_env(home, TESSERA_DATABASE_URL=database_url)
    with serving(["--workers", "2", "--host", "127.0.0.1"], env, log, port):
        url = f"http://127.0.0.1:{port}"
        token = (home / "admin-token").read_text().strip()
        cli = Cli({**base_env(home), "TESSERA_URL": url}, tmp_path)  # token from $TESSERA_HOME/admin-token
        key = tmp_path / "agent.jwk"
        agent_id = cli.ok(
            "agent", "create", "a", "--owner", "o@example.com", "--generate-key", str(key)
        ).strip()
        for _ in range(6):  # spread over both workers; every one agrees on the issuer
            access = cli.ok("token", "get", "--agent", agent_id, "--key", str(key)).strip()
            assert cli.json("token", "introspect", access)["iss"] == url
    output = log.read_text()
    assert output.count("created admin credential") == 1
    assert f"created admin credential {token}" in output
    assert "Traceback" not in output
