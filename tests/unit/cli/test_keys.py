"""``tessera keys …``: the server's signing keys."""

from __future__ import annotations

from pathlib import Path

from tessera.sdk.verifier import TokenVerifier, VerificationError
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


def test_list_rotate_and_retire(cli: Cli, server: ServerProcess) -> None:
    (initial,) = cli.json("keys", "list")["keys"]
    assert initial["state"] == "active"
    assert initial["kid"] in cli.ok("keys", "list")

    scheduled = cli.json("keys", "rotate")
    assert scheduled["kid"] != initial["kid"]
    states = {k["kid"]: k["state"] for k in cli.json("keys", "list")["keys"]}
    assert states[initial["kid"]] == "active"  # the new key is published before it signs
    assert states[scheduled["kid"]] != "active"

    out = cli.ok("keys", "rotate", "--now")
    assert out.startswith("new signing key ")
    immediate = out.split()[3]
    states = {k["kid"]: k["state"] for k in cli.json("keys", "list")["keys"]}
    assert states[immediate] == "active"
    assert initial["kid"] in states


def test_retire_invalidates_the_keys_tokens(cli: Cli, server: ServerProcess, tmp_path: Path) -> None:
    key = tmp_path / "agent.jwk"
    agent_id = cli.ok("agent", "create", "a", "--owner", "o@example.com", "--generate-key", str(key)).strip()
    token = cli.ok("token", "get", "--agent", agent_id, "--key", str(key)).strip()
    verifier = TokenVerifier.for_server(server.url)
    signing_kid = verifier.verify_token(token).kid
    cli.ok("keys", "rotate", "--now")
    assert cli.json("token", "introspect", token)["active"] is True
    assert cli.ok("keys", "retire", signing_kid) == f"retired signing key {signing_kid}\n"
    assert cli.json("token", "introspect", token) == {"active": False}
    fresh = TokenVerifier.for_server(server.url)
    try:
        fresh.verify_token(token)
    except VerificationError:
        pass
    else:
        raise AssertionError("a token signed by a retired key still verifies")
    assert cli.fails("keys", "retire", "no-such-kid").startswith("error: ")


def test_tables_keep_ids_whole_on_narrow_and_wide_terminals(cli: Cli) -> None:
    cli.ok("keys", "rotate")
    kids = [k["kid"] for k in cli.json("keys", "list")["keys"]]
    for columns in ("60", "250"):
        out = cli.ok("keys", "list", env={"COLUMNS": columns})
        assert out.startswith("2 signing key(s)")
        for kid in kids:
            assert kid in out
        assert "pending" in out
