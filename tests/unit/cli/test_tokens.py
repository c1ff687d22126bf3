"""``tessera token …``: getting a token as the agent, revoking and introspecting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera.sdk.agent import AgentClient, TokenResponse
from tessera.sdk.verifier import TokenVerifier, VerificationError
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


@pytest.fixture
def agent(cli: Cli) -> tuple[str, Path]:
    key = cli.workdir / "agent.jwk"
    agent_id = cli.ok(
        "agent", "create", "bot", "--owner", "o@example.com",
        "--scopes", "tickets:read tickets:write", "--generate-key", str(key),
        "--resource-uri", "https://api.example",
    ).strip()  # fmt: skip
    return agent_id, key


def test_token_get_gives_a_dpop_bound_token_that_verifies(
    cli: Cli, server: ServerProcess, agent: tuple[str, Path]
) -> None:
    agent_id, key = agent
    token = cli.ok("token", "get", "--agent", agent_id, "--key", str(key), "--scope", "tickets:read").strip()
    verifier = TokenVerifier.for_server(server.url)
    claims = verifier.verify_token(token)
    assert claims.client_id == agent_id
    assert claims.scopes == ("tickets:read",)
    private = json.loads(key.read_text())
    assert claims.cnf_jkt == private["kid"]  # generated kids are the key's RFC 7638 thumbprint
    # The token works only with a proof signed by the key in the file.
    client = AgentClient(server.url, agent_id, private)
    url = "https://api.example/tickets"
    response = TokenResponse(access_token=token, token_type="DPoP", expires_in=300, scope="tickets:read")
    headers = client.auth_headers("GET", url, response)
    verified = verifier.verify(headers["Authorization"], method="GET", url=url, dpop=headers["DPoP"])
    assert verified.agent_id == agent_id
    with pytest.raises(VerificationError):
        verifier.verify(f"Bearer {token}", method="GET", url=url)
    client.close()


def test_token_get_json_with_task_resource_and_lifetime(
    cli: Cli, server: ServerProcess, agent: tuple[str, Path]
) -> None:
    agent_id, key = agent
    response = cli.json(
        "token", "get", "--agent", agent_id, "--key", str(key),
        "--scope", "tickets:read tickets:write", "--resource", "https://api.example",
        "--task", "T-42", "--purpose", "triage the queue",
        "--task-resource", "tickets/42", "--task-action", "read", "--task-action", "comment",
        "--expires-in", "60",
    )  # fmt: skip
    assert response["token_type"] == "DPoP"
    assert response["expires_in"] == 60
    assert response["scope"] == "tickets:read tickets:write"
    (detail,) = response["authorization_details"]
    assert detail["type"] == "agent_task"
    assert detail["task_id"] == "T-42"
    assert detail["purpose"] == "triage the queue"
    assert detail["resources"] == ["tickets/42"]
    assert detail["actions"] == ["read", "comment"]
    claims = TokenVerifier.for_server(server.url, audience="https://api.example").verify_token(
        response["access_token"]
    )
    assert claims.task_id == "T-42"
    assert claims.audience == ("https://api.example",)


def test_token_get_without_dpop_gives_a_bearer_token(
    cli: Cli, server: ServerProcess, agent: tuple[str, Path]
) -> None:
    agent_id, key = agent
    response = cli.json("token", "get", "--agent", agent_id, "--key", str(key), "--no-dpop")
    assert response["token_type"] == "Bearer"
    assert TokenVerifier.for_server(server.url).verify_token(response["access_token"]).cnf_jkt is None


def test_token_get_needs_no_admin_token(cli: Cli, agent: tuple[str, Path]) -> None:
    agent_id, key = agent
    out = cli.ok("token", "get", "--agent", agent_id, "--key", str(key), env={"TESSERA_ADMIN_TOKEN": None})
    assert out.count(".") == 2


def test_token_get_errors(cli: Cli, agent: tuple[str, Path]) -> None:
    agent_id, key = agent
    line = cli.fails("token", "get", "--agent", agent_id, "--key", str(key), "--scope", "tickets:delete")
    assert line.startswith("error: invalid_scope: ")
    assert "'tickets:delete'" in line
    assert cli.fails("token", "get", "--agent", agent_id, "--key", str(key), "--task", "T").endswith(
        "--task needs --purpose"
    )
    assert "need --task" in cli.fails(
        "token", "get", "--agent", agent_id, "--key", str(key), "--purpose", "p"
    )
    other = cli.workdir / "other.jwk"
    cli.ok("agent", "create", "other", "--owner", "o@example.com", "--generate-key", str(other))
    assert cli.fails("token", "get", "--agent", agent_id, "--key", str(other)).startswith(
        "error: invalid_client: "
    )
    public = cli.workdir / "public.jwk"
    public.write_text(json.dumps({k: v for k, v in json.loads(key.read_text()).items() if k != "d"}))
    assert "no private key" in cli.fails("token", "get", "--agent", agent_id, "--key", str(public))


def test_suspended_agent_gets_no_token_and_its_tokens_die(cli: Cli, agent: tuple[str, Path]) -> None:
    agent_id, key = agent
    token = cli.ok("token", "get", "--agent", agent_id, "--key", str(key)).strip()
    assert cli.json("token", "introspect", token)["active"] is True
    assert cli.ok("agent", "suspend", agent_id) == f"{agent_id}: suspended (1 live token(s) revoked)\n"
    assert cli.json("token", "introspect", token) == {"active": False}
    assert cli.fails("token", "get", "--agent", agent_id, "--key", str(key)).startswith("error: ")


def test_introspect_plain_and_stdin(cli: Cli, agent: tuple[str, Path]) -> None:
    agent_id, key = agent
    token = cli.ok("token", "get", "--agent", agent_id, "--key", str(key)).strip()
    out = cli.ok("token", "introspect", token)
    assert agent_id in out
    assert "DPoP" in out
    assert cli.json("token", "introspect", "-", stdin=token + "\n")["client_id"] == agent_id
    assert cli.json("token", "introspect", "not-a-token") == {"active": False}


def test_revoke_by_jti_agent_and_task(cli: Cli, agent: tuple[str, Path]) -> None:
    agent_id, key = agent

    def fetch(*extra: str) -> str:
        return cli.ok("token", "get", "--agent", agent_id, "--key", str(key), *extra).strip()

    first = fetch()
    jti = cli.json("token", "introspect", first)["jti"]
    assert cli.ok("token", "revoke", "--jti", jti, "--reason", "leaked") == "revoked 1 token(s)\n"
    assert cli.json("token", "introspect", first)["active"] is False

    tasked = fetch("--task", "T-9", "--purpose", "p")
    untasked = fetch()
    result = cli.json("token", "revoke", "--task", "T-9")
    assert result["revoked"] == 1
    assert cli.json("token", "introspect", tasked)["active"] is False
    assert cli.json("token", "introspect", untasked)["active"] is True

    assert cli.ok("token", "revoke", "--agent", agent_id) == "revoked 1 token(s)\n"
    assert cli.json("token", "introspect", untasked)["active"] is False


def test_revoke_needs_exactly_one_selector(cli: Cli) -> None:
    assert cli.fails("token", "revoke") == "error: give exactly one of --jti, --agent or --task"
    assert cli.fails("token", "revoke", "--jti", "a", "--task", "b").startswith("error: give exactly one")
