"""``tessera task …`` and ``tessera token exchange`` against a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


def create_agent(cli: Cli, name: str, scopes: str) -> tuple[str, Path]:
    key = cli.workdir / f"{name}.jwk"
    agent_id = cli.ok(
        "agent", "create", name, "--owner", "o@example.com", "--scopes", scopes, "--generate-key", str(key)
    ).strip()
    return agent_id, key


@pytest.fixture
def agent(cli: Cli) -> tuple[str, Path]:
    return create_agent(cli, "bot", "invoices:read invoices:write")


def test_open_show_list_close_a_task(cli: Cli, server: ServerProcess, agent: tuple[str, Path]) -> None:
    agent_id, key = agent
    out = cli.ok(
        "task", "open", "--agent", agent_id, "--purpose", "reconcile invoices", "--expires-in", "600",
        "--resource", "invoices/1", "--action", "read", "--budget", "10", "--id", "T-100",
    )  # fmt: skip
    assert out.startswith("T-100: open until ")
    shown = cli.json("task", "show", "T-100")
    assert shown["agent_id"] == agent_id
    assert (shown["state"], shown["budget"], shown["budget_remaining"]) == ("open", 10, 10)
    assert (shown["resources"], shown["actions"]) == (["invoices/1"], ["read"])
    assert "T-100" in cli.ok("task", "list", "--agent", agent_id)
    assert [t["id"] for t in cli.json("task", "list", "--state", "open")["tasks"]] == ["T-100"]

    token = cli.ok(
        "token", "get", "--agent", agent_id, "--key", str(key), "--no-dpop",
        "--task", "T-100", "--purpose", "anything", "--expires-in", "3600",
    ).strip()  # fmt: skip
    introspected = cli.json("token", "introspect", token)
    assert introspected["active"] is True
    assert introspected["authorization_details"][0]["purpose"] == "reconcile invoices"
    assert introspected["exp"] - introspected["iat"] <= 600

    helper_id, helper_key = create_agent(cli, "helper", "invoices:read")
    delegated = cli.json(
        "token", "exchange", "--agent", helper_id, "--key", str(helper_key),
        "--subject-token", token, "--scope", "invoices:read",
    )  # fmt: skip
    chain = cli.json("token", "introspect", delegated["access_token"])
    assert chain["act"] == {"sub": helper_id}
    assert chain["sub"] == agent_id
    assert chain["client_id"] == helper_id
    assert chain["token_type"] == "DPoP"

    closed = cli.ok("task", "close", "T-100", "--reason", "done")
    assert closed == "T-100: closed; revoked 2 token(s)\n"
    assert cli.json("token", "introspect", token) == {"active": False}
    assert cli.json("token", "introspect", delegated["access_token"]) == {"active": False}
    assert cli.json("task", "show", "T-100")["closed_reason"] == "done"
    with server.admin() as admin:
        records = admin.get("/admin/v1/audit/records", params={"type": "task.*"}).json()["records"]
    assert [r["type"] for r in records[:2]] == ["task.closed", "task.opened"]


def test_task_errors(cli: Cli, agent: tuple[str, Path]) -> None:
    agent_id, key = agent
    assert cli.fails("task", "show", "T-404") == "error: not_found: no task 'T-404'"
    assert cli.fails("task", "close", "T-404") == "error: not_found: no task 'T-404'"
    assert (
        cli.fails("task", "open", "--agent", agent_id, "--purpose", "x")
        == "error: give exactly one of --expires-in and --deadline"
    )
    assert (
        cli.fails("task", "list", "--state", "paused")
        == "error: unknown state 'paused': open, closed or expired"
    )
    assert "unknown agent 'agt_nobody'" in cli.fails(
        "task", "open", "--agent", "agt_nobody", "--purpose", "x", "--expires-in", "60"
    )
    assert "deadline" in cli.fails(
        "task", "open", "--agent", agent_id, "--purpose", "x", "--deadline", "2001-01-01T00:00:00Z"
    )
    cli.ok("task", "open", "--agent", agent_id, "--purpose", "x", "--expires-in", "60", "--id", "T-1")
    cli.ok("task", "close", "T-1")
    refused = cli.fails(
        "token", "get", "--agent", agent_id, "--key", str(key), "--task", "T-1", "--purpose", "x"
    )
    assert refused == "error: invalid_authorization_details: task 'T-1' is closed"
    token = cli.ok("token", "get", "--agent", agent_id, "--key", str(key), "--scope", "invoices:read").strip()
    wider = cli.fails(
        "token", "exchange", "--agent", agent_id, "--key", str(key), "--subject-token", token,
        "--scope", "invoices:write",
    )  # fmt: skip
    assert wider == "error: invalid_scope: scope 'invoices:write' is not held by the subject token"


def test_admin_routes_need_the_admin_credential(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/admin/v1/tasks", json={"agent_id": "x"}, timeout=10)
    assert response.status_code == 401
