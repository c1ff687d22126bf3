"""``tessera user|login|approvals|access``: a person's CLI session against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp

from tessera.sdk.agent import AgentClient
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "payments-approvals"
PASSWORD = "correct horse battery\n"
AS_PERSON = {"TESSERA_ADMIN_TOKEN": None}


def test_an_approver_answers_an_agents_request_from_the_cli(cli: Cli, server: ServerProcess) -> None:
    cli.ok("policy", "apply", str(EXAMPLE))
    added = cli.ok(
        "user", "add", "alice@example.com", "--role", "approver", "--group", "payments-approvers",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    uri = next(line for line in added.splitlines() if line.startswith("otpauth://"))
    secret = pyotp.parse_uri(uri).secret
    assert "alice@example.com" in cli.ok("user", "list")

    key = cli.workdir / "pay-bot.jwk"
    agent_id = cli.ok(
        "agent", "create", "pay-bot", "--owner", "olivia@example.com", "--scopes", "access:request",
        "--attr", "role=payments", "--segment", "payments", "--generate-key", str(key),
    ).strip()  # fmt: skip
    agent = AgentClient(server.url, agent_id, json.loads(key.read_text()))
    token = agent.fetch_token(scope="access:request")
    big = agent.request_access(
        token, action="pay", resource={"type": "Resource", "id": "acct-ops"},
        context={"amount": 25_000, "payee": "globex"}, purpose="invoice 7",
    )  # fmt: skip
    other = agent.request_access(
        token, action="pay", resource={"type": "Resource", "id": "acct-ops"},
        context={"amount": 30_000, "payee": "initech"}, purpose="invoice 8",
    )  # fmt: skip
    agent.close()

    logged_in = cli.ok(
        "login", "alice@example.com", "--totp", pyotp.TOTP(secret).now(), "--password-stdin",
        env=AS_PERSON, stdin=PASSWORD,
    )  # fmt: skip
    assert "approver" in logged_in
    assert (Path(cli.env["TESSERA_HOME"] or "") / "person-token").stat().st_mode & 0o777 == 0o600
    assert cli.json("whoami", env=AS_PERSON)["username"] == "alice@example.com"
    # An approver is not an admin.
    assert "forbidden" in cli.fails("agent", "list", env=AS_PERSON)

    pending = cli.json("approvals", "list", env=AS_PERSON)["requests"]
    assert {r["id"] for r in pending} == {big.request_id, other.request_id}
    shown = cli.ok("approvals", "show", big.request_id, env=AS_PERSON)
    assert "globex" in shown
    assert "olivia@example.com" in shown
    assert "approved" in cli.ok(
        "approvals", "approve", big.request_id, "--yes", "--reason", "ok", env=AS_PERSON
    )
    assert "denied" in cli.ok(
        "approvals", "deny", other.request_id, "--reason", "unknown payee", env=AS_PERSON
    )
    assert "can no longer be answered" in cli.fails(
        "approvals", "approve", other.request_id, "--yes", env=AS_PERSON
    )
    assert "error: " in cli.fails("approvals", "deny", big.request_id, env=AS_PERSON)  # --reason is required

    grants = cli.json("access", "list", "--kind", "approval")["grants"]
    assert [g["request_id"] for g in grants] == [big.request_id]
    assert "revoked" in cli.ok("access", "revoke", grants[0]["id"], "--reason", "done")
    assert cli.ok("logout", env=AS_PERSON).strip() == "logged out"
    assert "forbidden" not in cli.ok("agent", "list")  # back to the admin token


def test_break_glass_from_the_cli(cli: Cli) -> None:
    agent_id = cli.ok(
        "agent", "create", "ops-bot", "--owner", "o@example.com", "--generate-key", str(cli.workdir / "k.jwk")
    ).strip()
    assert "justification" in cli.fails("access", "break-glass", "grant", agent_id, "--justification", "x")
    granted = cli.json(
        "access", "break-glass", "grant", agent_id, "--justification", "payroll blocked, incident 4711",
        "--duration", "600",
    )  # fmt: skip
    listed = cli.json("access", "break-glass", "list")["grants"]
    assert [(g["id"], g["uses"]) for g in listed] == [(granted["id"], 0)]
    assert "reviewed by admin" in cli.ok(
        "access", "break-glass", "review", granted["id"], "--note", "justified"
    )
    assert cli.json("access", "break-glass", "show", granted["id"])["review_note"] == "justified"


def test_user_management(cli: Cli) -> None:
    cli.ok("user", "add", "audrey@example.com", "--role", "auditor", "--password-stdin", stdin=PASSWORD)
    refused = cli.fails("user", "add", "x@example.com", "--role", "root", "--password-stdin", stdin=PASSWORD)
    assert "unknown role 'root'" in refused
    assert "does not use totp" in cli.fails("user", "reset-totp", "audrey@example.com")
    assert cli.ok("user", "disable", "audrey@example.com").strip() == "audrey@example.com: disabled"
    assert "unauthorized" in cli.fails(
        "login", "audrey@example.com", "--password-stdin", env=AS_PERSON, stdin=PASSWORD
    )
