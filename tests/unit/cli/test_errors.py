"""Every failure is one ``error:`` line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import tessera.cli.agents
from tessera.sdk.proofs import generate_private_jwk
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli, base_env


def test_unknown_agent(cli: Cli) -> None:
    assert cli.fails("agent", "show", "agt_nope") == "error: not_found: no agent 'agt_nope'"
    assert cli.fails("agent", "suspend", "agt_nope").startswith("error: not_found: ")
    assert cli.fails("agent", "remove-key", "agt_nope", "kid").startswith("error: not_found: ")
    key = cli.workdir / "k.jwk"
    assert cli.fails("agent", "add-key", "agt_nope", "--generate-key", str(key), "--json").startswith(
        "error: not_found: "
    )
    assert not key.exists()


def test_server_error_text_cannot_smuggle_control_characters(cli: Cli) -> None:
    line = cli.fails("agent", "show", "evil\x1b[2J\nsecond line")
    assert "\x1b" not in line
    assert line.startswith("error: not_found: ")


def test_invalid_request_body_from_server(cli: Cli) -> None:
    line = cli.fails("agent", "create", "a", "--owner", "o@example.com", "--max-ttl", "1")
    assert line.startswith("error: invalid_request: max_ttl")
    assert cli.fails("agent", "create", "a", "--owner", "o@example.com", "--expires-at", "soon").startswith(
        "error: invalid_request: expires_at"
    )


def test_server_down(offline_cli: Cli, tmp_path: Path) -> None:
    url = offline_cli.env["TESSERA_URL"]
    expected = f"error: cannot connect to tessera at {url} (is the server running? set TESSERA_URL)"
    assert offline_cli.fails("agent", "list") == expected
    assert offline_cli.fails("keys", "rotate", "--json") == expected
    key = tmp_path / "k.jwk"
    key.write_text(json.dumps(generate_private_jwk()))
    assert offline_cli.fails("token", "get", "--agent", "agt_x", "--key", str(key)) == expected


def test_key_file_is_not_left_behind_when_the_server_is_down(offline_cli: Cli, tmp_path: Path) -> None:
    key = tmp_path / "k.jwk"
    assert "cannot connect" in offline_cli.fails(
        "agent", "create", "a", "--owner", "o@example.com", "--generate-key", str(key)
    )
    assert not key.exists()


def test_invalid_server_url(offline_cli: Cli) -> None:
    line = offline_cli.fails("agent", "list", env={"TESSERA_URL": "ftp://example.invalid"})
    assert line.startswith("error: invalid server url 'ftp://example.invalid'")


def test_missing_admin_token(offline_cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    line = offline_cli.fails("agent", "list", env={"TESSERA_ADMIN_TOKEN": None, "TESSERA_HOME": str(home)})
    where = f"'{home}/admin-token' does not exist"
    assert line == f"error: no admin token: set TESSERA_ADMIN_TOKEN or TESSERA_HOME ({where})"


def test_unreadable_and_empty_admin_token_file(offline_cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "admin-token").mkdir(parents=True)
    env = {"TESSERA_ADMIN_TOKEN": None, "TESSERA_HOME": str(home)}
    assert offline_cli.fails("keys", "list", env=env).startswith("error: cannot read admin token ")
    (home / "admin-token").rmdir()
    (home / "admin-token").write_text("\n")
    assert (
        offline_cli.fails("keys", "list", env=env) == f"error: admin token file '{home}/admin-token' is empty"
    )


def test_admin_token_is_read_from_tessera_home(cli: Cli, server: ServerProcess) -> None:
    env = {"TESSERA_ADMIN_TOKEN": None, "TESSERA_HOME": str(server.home)}
    assert cli.json("agent", "list", env=env) == {"agents": []}


def test_wrong_admin_token(cli: Cli) -> None:
    line = cli.fails("agent", "list", env={"TESSERA_ADMIN_TOKEN": "tsr_admin_wrong"})
    assert line.startswith("error: unauthorized: admin credential required")


@pytest.mark.parametrize("attr", ["team", "=blue", " =x"])
def test_malformed_attr(offline_cli: Cli, attr: str) -> None:
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@example.com", "--attr", attr)
    assert line == f"error: malformed --attr '{attr}': expected KEY=VALUE"


def test_repeated_attr(offline_cli: Cli) -> None:
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--attr", "k=1", "--attr", "k=2")
    assert line == "error: --attr 'k' is given twice"


def test_unreadable_and_malformed_key_files(offline_cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jwk"
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--jwk", str(missing))
    assert line == f"error: cannot read key file '{missing}': no such file or directory"
    bad = tmp_path / "bad.jwk"
    bad.write_text("{not json")
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--jwk", str(bad))
    assert line.startswith(f"error: key file '{bad}' is not valid json: ")
    assert offline_cli.fails("token", "get", "--agent", "a", "--key", str(bad)).startswith("error: key file ")
    assert offline_cli.fails("token", "get", "--agent", "a", "--key", str(tmp_path)).startswith(
        "error: cannot read key file "
    )
    symmetric = tmp_path / "oct.jwk"
    symmetric.write_text(json.dumps({"kty": "oct", "k": "c2VjcmV0"}))
    assert "symmetric key" in offline_cli.fails("agent", "add-key", "a", "--jwk", str(symmetric))
    not_a_key = tmp_path / "list.json"
    not_a_key.write_text("[1, 2]")
    assert "does not hold a jwk" in offline_cli.fails("agent", "add-key", "a", "--jwk", str(not_a_key))
    unsupported = tmp_path / "rsa.jwk"
    unsupported.write_text(json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}))
    line = offline_cli.fails("token", "get", "--agent", "a", "--key", str(unsupported))
    assert line.startswith(f"error: cannot use key file '{unsupported}': unsupported key type")


def test_conflicting_key_options(offline_cli: Cli, tmp_path: Path) -> None:
    jwk, new = str(tmp_path / "a.jwk"), str(tmp_path / "b.jwk")
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--jwk", jwk, "--generate-key", new)
    assert line == "error: give --jwk FILE or --generate-key PATH, not both"
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--key-type", "Ed25519")
    assert line == "error: --key-type applies only with --generate-key"
    assert not (tmp_path / "b.jwk").exists()


def test_usage_errors_are_one_line_too(offline_cli: Cli) -> None:
    result = offline_cli("agent", "create", "a")
    assert result.exit_code == 2
    assert result.stderr == "error: Missing option '--owner'. (see 'tessera agent create --help')\n"
    assert "Invalid value" in offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--max-ttl", "x")
    assert "No such command" in offline_cli.fails("agent", "explode")
    assert "--key-type" in offline_cli.fails("agent", "create", "a", "--owner", "o@x.io", "--key-type", "RSA")


def test_an_unexpected_exception_is_one_line(offline_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_pairs: list[str]) -> dict[str, str]:
        raise RuntimeError("boom\nwith a second line")

    monkeypatch.setattr(tessera.cli.agents, "parse_attributes", boom)
    line = offline_cli.fails("agent", "create", "a", "--owner", "o@x.io")
    assert line == "error: unexpected RuntimeError: boom with a second line"


class _NotJson(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path.startswith("/admin/v1/keys") else 502
        body = b"<html>not json</html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def not_json_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotJson)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_responses_that_are_not_json(not_json_server: str, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update(TESSERA_URL=not_json_server, TESSERA_ADMIN_TOKEN="tsr_admin_" + "x" * 40)
    cli = Cli(env, tmp_path)
    assert cli.fails("agent", "list") == "error: http 502: bad gateway"
    assert cli.fails("keys", "list") == "error: the server's response is not json (http 200)"
    key = tmp_path / "k.jwk"
    key.write_text(json.dumps(generate_private_jwk()))
    assert cli.fails("token", "get", "--agent", "a", "--key", str(key)).startswith("error: ")
