"""``tessera agent …`` against a real server: registration, keys, lifecycle, listing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tessera.sdk.proofs import generate_private_jwk
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli, base_env


def test_create_prints_only_the_id_and_registers_everything(cli: Cli, server: ServerProcess) -> None:
    key = cli.workdir / "agent.jwk"
    out = cli.ok(
        "agent", "create", "triage-bot",
        "--owner", "alice@example.com",
        "--attr", "team=support", "--attr", "tier=gold=plus",
        "--segment", "support",
        "--label", "prod", "--label", "eu",
        "--description", "triages tickets",
        "--generate-key", str(key),
        "--scopes", "tickets:read tickets:write",
        "--resource-uri", "https://api.example/tickets",
        "--max-ttl", "120",
        "--require-dpop",
        "--expires-at", "2099-01-01T00:00:00Z",
    )  # fmt: skip
    agent_id = out.strip()
    assert out == f"{agent_id}\n"
    with server.admin() as admin:
        agent = admin.get(f"/admin/v1/agents/{agent_id}").json()
    assert agent["name"] == "triage-bot"
    assert agent["owner"] == "alice@example.com"
    assert agent["attributes"] == {"team": "support", "tier": "gold=plus"}
    assert agent["segment"] == "support"
    assert agent["labels"] == ["prod", "eu"]
    assert agent["description"] == "triages tickets"
    assert agent["scopes"] == ["tickets:read", "tickets:write"]
    assert agent["resource_uris"] == ["https://api.example/tickets"]
    assert agent["max_ttl"] == 120
    assert agent["require_dpop"] is True
    assert agent["expires_at"].startswith("2099-01-01T00:00:00")
    private = json.loads(key.read_text())
    assert [k["kid"] for k in agent["keys"]] == [private["kid"]]
    assert "d" not in agent["keys"][0]["jwk"]
    assert agent["keys"][0]["jwk"]["x"] == private["x"]


def test_generated_key_file_is_private_and_never_overwritten(cli: Cli) -> None:
    key = cli.workdir / "agent.jwk"
    cli.ok("agent", "create", "a", "--owner", "o@example.com", "--generate-key", str(key))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_text()
    line = cli.fails("agent", "create", "b", "--owner", "o@example.com", "--generate-key", str(key))
    assert "refusing to overwrite" in line
    assert key.read_text() == before
    assert len(cli.json("agent", "list")["agents"]) == 1


def test_ed25519_key_type(cli: Cli) -> None:
    key = cli.workdir / "ed.jwk"
    agent = cli.json(
        "agent",
        "create",
        "ed",
        "--owner",
        "o@example.com",
        "--generate-key",
        str(key),
        "--key-type",
        "Ed25519",
    )
    assert json.loads(key.read_text())["crv"] == "Ed25519"
    assert agent["keys"][0]["jwk"]["crv"] == "Ed25519"


def test_key_file_is_removed_when_the_server_refuses_the_agent(cli: Cli) -> None:
    key = cli.workdir / "agent.jwk"
    line = cli.fails("agent", "create", "a", "--owner", "not-an-email", "--generate-key", str(key))
    assert line.startswith("error: ")
    assert not key.exists()


def test_create_with_jwk_file_sends_only_the_public_half(cli: Cli) -> None:
    private = generate_private_jwk()
    path = cli.workdir / "private.jwk"
    path.write_text(json.dumps(private))
    agent = cli.json("agent", "create", "a", "--owner", "o@example.com", "--jwk", str(path))
    jwk = agent["keys"][0]["jwk"]
    assert "d" not in jwk
    assert (jwk["x"], jwk["y"]) == (private["x"], private["y"])


def test_json_outputs(cli: Cli) -> None:
    created = cli.json("agent", "create", "a", "--owner", "o@example.com", "--scopes", "x:read")
    assert created["id"].startswith("agt_")
    assert created["state"] == "active"
    shown = cli.json("agent", "show", created["id"])
    assert shown["id"] == created["id"]
    assert shown["scopes"] == ["x:read"]
    listed = cli.json("agent", "list")
    assert [a["id"] for a in listed["agents"]] == [created["id"]]


def test_list_filters_and_table(cli: Cli) -> None:
    first = cli.ok("agent", "create", "alpha-bot", "--owner", "a@example.com").strip()
    second = cli.ok("agent", "create", "beta-bot", "--owner", "b@example.com").strip()
    cli.ok("agent", "suspend", second)
    table = cli.ok("agent", "list")
    assert first in table
    assert second in table
    assert "alpha-bot" in table
    assert "suspended" in table
    by_owner = cli.json("agent", "list", "--owner", "a@example.com")["agents"]
    assert [a["id"] for a in by_owner] == [first]
    by_state = cli.json("agent", "list", "--state", "suspended")["agents"]
    assert [a["id"] for a in by_state] == [second]
    assert "unknown state" in cli.fails("agent", "list", "--state", "asleep")


def test_show_table_lists_fields_and_keys(cli: Cli) -> None:
    key = cli.workdir / "k.jwk"
    agent_id = cli.ok(
        "agent",
        "create",
        "shown",
        "--owner",
        "o@example.com",
        "--attr",
        "team=blue",
        "--generate-key",
        str(key),
    ).strip()
    out = cli.ok("agent", "show", agent_id)
    assert agent_id in out
    assert "team=blue" in out
    assert json.loads(key.read_text())["kid"] in out


def test_lifecycle(cli: Cli) -> None:
    agent_id = cli.ok("agent", "create", "a", "--owner", "o@example.com").strip()
    assert cli.ok("agent", "suspend", agent_id, "--reason", "looks odd") == f"{agent_id}: suspended\n"
    assert cli.json("agent", "show", agent_id)["state_reason"] == "looks odd"
    assert cli.ok("agent", "resume", agent_id) == f"{agent_id}: active\n"
    quarantined = cli.json("agent", "quarantine", agent_id, "--reason", "exfiltration")
    assert quarantined["state"] == "quarantined"
    assert quarantined["revoked_tokens"] == 0
    assert cli.ok("agent", "release", agent_id, "--reason", "cleared") == f"{agent_id}: active\n"
    assert cli.ok("agent", "decommission", agent_id) == f"{agent_id}: decommissioned\n"
    line = cli.fails("agent", "resume", agent_id)
    assert line.startswith("error: ")
    assert agent_id in line
    assert cli.json("agent", "show", agent_id)["state"] == "decommissioned"


def test_add_and_remove_keys(cli: Cli) -> None:
    agent_id = cli.ok("agent", "create", "a", "--owner", "o@example.com").strip()
    second = cli.workdir / "second.jwk"
    kid = cli.ok("agent", "add-key", agent_id, "--generate-key", str(second)).strip()
    assert kid == json.loads(second.read_text())["kid"]
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    public = {k: v for k, v in generate_private_jwk().items() if k != "d"}
    jwk_file = cli.workdir / "public.jwk"
    jwk_file.write_text(json.dumps({"keys": [public]}))
    added = cli.json(
        "agent", "add-key", agent_id, "--jwk", str(jwk_file), "--expires-at", "2099-01-01T00:00:00Z"
    )
    assert added["kid"] == public["kid"]
    assert added["expires_at"].startswith("2099-01-01")
    assert {k["kid"] for k in cli.json("agent", "show", agent_id)["keys"]} == {kid, public["kid"]}
    assert cli.ok("agent", "remove-key", agent_id, kid) == f"{agent_id}: removed key {kid}\n"
    keys = cli.json("agent", "show", agent_id)["keys"]
    assert [k["kid"] for k in keys if not k["removed_at"]] == [public["kid"]]
    assert cli.fails("agent", "add-key", agent_id).startswith("error: give --jwk")


def test_secret_is_refused_while_client_secrets_are_disabled(cli: Cli) -> None:
    agent_id = cli.ok("agent", "create", "a", "--owner", "o@example.com").strip()
    assert "client_secret authentication is disabled" in cli.fails("agent", "secret", agent_id)


def test_secret_is_printed_once_when_enabled(tmp_path: Path, database_url: str) -> None:
    server = ServerProcess(
        home=tmp_path / "home", database_url=database_url, env={"TESSERA_ALLOW_CLIENT_SECRET": "true"}
    ).start()
    try:
        env = base_env(tmp_path / "cli-home")
        env.update(TESSERA_URL=server.url, TESSERA_ADMIN_TOKEN=server.admin_token)
        cli = Cli(env, tmp_path)
        agent_id = cli.ok("agent", "create", "legacy", "--owner", "o@example.com").strip()
        result = cli("agent", "secret", agent_id)
        assert result.exit_code == 0
        secret = result.stdout.strip()
        assert len(secret) >= 32
        assert "\n" not in secret
        assert "shown only this once" in result.stderr
        assert cli.json("agent", "show", agent_id)["has_client_secret"] is True
    finally:
        server.stop()
