"""``tessera audit tail|search|prune|checkpoint|jwks`` against a real server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import tessera.cli.audit
from tessera.audit.queries import token_id
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


@pytest.fixture
def activity(cli: Cli, server: ServerProcess) -> dict[str, str]:
    """Two agents; a token for a task; a refused token request; one decision."""
    key = cli.workdir / "agent.jwk"
    agent_id = cli.ok(
        "agent", "create", "research-bot", "--owner", "o@example.com", "--scopes", "records:read",
        "--generate-key", str(key),
    ).strip()  # fmt: skip
    other = cli.ok("agent", "create", "other-bot", "--owner", "o@example.com").strip()
    token = cli.ok(
        "token", "get", "--agent", agent_id, "--key", str(key), "--scope", "records:read",
        "--task", "T-42", "--purpose", "summarise",
    ).strip()  # fmt: skip
    cli.fails("token", "get", "--agent", agent_id, "--key", str(key), "--scope", "records:write")
    decision = {
        "principal": {"type": "Agent", "id": agent_id},
        "action": "read",
        "resource": {"type": "Resource", "id": "doc-1"},
    }
    with server.admin() as admin:
        assert admin.post("/admin/v1/decisions", json=decision).json()["decision"] is False
    return {"agent": agent_id, "other": other, "token": token}


def jsonl(output: str) -> list[dict[str, object]]:
    return [json.loads(row) for row in output.splitlines()]


def test_tail_prints_the_newest_oldest_first(cli: Cli, activity: dict[str, str]) -> None:
    records = jsonl(cli.ok("audit", "tail", "-n", "3", "--type", "agent.*", "--json"))
    assert [r["type"] for r in records] == ["agent.created", "agent.created"]
    assert [r["subject"] for r in records] == [activity["agent"], activity["other"]]
    by_agent = jsonl(cli.ok("audit", "tail", "--agent", activity["agent"], "--json"))
    assert [r["type"] for r in by_agent] == ["agent.created", "token.issued", "token.denied", "decision"]
    seqs = [r["seq"] for r in by_agent]
    assert seqs == sorted(seqs)
    lines = cli.ok("audit", "tail", "--agent", activity["agent"]).splitlines()
    assert len(lines) == 4
    issued = lines[1].split()
    assert issued[3:] == [
        "token.issued",
        f"agent:{activity['agent']}",
        activity["agent"],
        "T-42",
        "permit",
        "scope",
        "records:read",
    ]
    assert lines[2].split()[7] == "invalid_scope"  # a refused request shows the error it got
    assert lines[3].endswith("deny     read Resource::doc-1")
    assert jsonl(cli.ok("audit", "tail", "-n", "1", "--since", "2099-01-01", "--json")) == []


def test_tail_follow_prints_new_records_until_ctrl_c(
    cli: Cli, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[float] = []

    def pause(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            with server.admin() as admin:
                admin.post("/admin/v1/agents", json={"name": "late", "owner": "o@example.com"})
            return
        if len(polls) < 4:
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(tessera.cli.audit, "pause", pause)
    result = cli("audit", "tail", "--follow", "-n", "2", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    types = [r["type"] for r in jsonl(result.stdout)]
    assert types[-1] == "agent.created"
    assert types.count("agent.created") == 1
    # The follower's own reads of the log are not echoed (the first fetch's may be, once).
    assert types.count("admin.read") <= 1
    # Idle polls back off (bounded); new records bring the next poll sooner.
    shortest = tessera.cli.audit.MIN_POLL
    assert polls == [2 * shortest, shortest, 2 * shortest, 4 * shortest]
    assert max(polls) <= tessera.cli.audit.MAX_POLL


def test_search_filters(cli: Cli, activity: dict[str, str]) -> None:
    agent_id, token = activity["agent"], activity["token"]
    by_task = jsonl(cli.ok("audit", "search", "--task", "T-42", "--json"))
    assert [r["type"] for r in by_task] == ["token.issued"]
    issued = by_task[0]
    assert issued["decision"]["policies"] == ["issue-tokens-within-registered-scopes"]
    assert token not in json.dumps(issued)  # only the token's HMAC is kept
    by_token = jsonl(cli.ok("audit", "search", "--token", token, "--json"))
    by_jti = jsonl(cli.ok("audit", "search", "--token", token_id(token), "--json"))
    assert [r["id"] for r in by_token] == [r["id"] for r in by_jti] == [issued["id"]]
    denied = jsonl(cli.ok("audit", "search", "--decision", "deny", "--json"))
    assert [(r["type"], r["subject"]) for r in denied] == [("decision", agent_id)]
    permits = jsonl(cli.ok("audit", "search", "--decision", "permit", "--agent", agent_id, "--json"))
    assert [r["type"] for r in permits] == ["token.issued"]
    newest = jsonl(cli.ok("audit", "search", "--type", "agent.*", "--limit", "1", "--json"))
    assert [r["subject"] for r in newest] == [activity["other"]]
    oldest = jsonl(cli.ok("audit", "search", "--limit", "2", "--oldest-first", "--json"))
    assert [r["seq"] for r in oldest] == [1, 2]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert jsonl(cli.ok("audit", "search", "--since", later, "--json")) == []
    assert len(jsonl(cli.ok("audit", "search", "--until", later, "--since", "1h", "--json"))) >= 6
    table = cli.ok("audit", "search", "--agent", agent_id)
    assert "4 record(s)" in table
    for column in ("time", "seq", "type", "actor", "subject", "task", "outcome", "reason"):
        assert column in table
    assert "invalid_scope" in table


def test_search_errors(cli: Cli) -> None:
    assert cli.fails("audit", "search", "--since", "yesterday").startswith(
        "error: invalid_request: invalid time"
    )
    assert cli.fails("audit", "search", "--token", "a.b.c") == (
        "error: token is not a readable jwt; pass its jti instead"
    )
    assert "is not one of" in cli.fails("audit", "search", "--decision", "maybe")
    assert "--limit" in cli.fails("audit", "search", "--limit", "0")


def test_prune_keeps_the_rest_verifiable(cli: Cli, activity: dict[str, str]) -> None:
    assert cli.ok("audit", "prune", "--before", "2001-01-01") == (
        "nothing to prune: no signed checkpoint older than 2001-01-01 beyond the anchor\n"
    )
    assert cli.ok("audit", "checkpoint").startswith("signed checkpoint at seq ")
    assert cli.json("audit", "checkpoint") == {"seq": None}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    pruned = cli.json("audit", "prune", "--before", tomorrow)
    assert pruned["pruned"] > 6
    remaining = jsonl(cli.ok("audit", "search", "--oldest-first", "--json"))
    assert remaining[0]["seq"] == pruned["anchor_seq"] + 1
    assert any(r["type"] == "audit.pruned" for r in remaining)
    assert not any(r["subject"] == activity["agent"] for r in remaining)
    assert cli.ok("audit", "verify").startswith("ok: ")


def test_jwks_is_the_public_audit_jwks(cli: Cli, server: ServerProcess, tmp_path: Path) -> None:
    printed = json.loads(cli.ok("audit", "jwks"))
    assert printed == cli.json("audit", "jwks")
    public = httpx.get(f"{server.url}/.well-known/audit-jwks.json").json()
    assert printed == public
    assert all("d" not in key for key in printed["keys"])
    assert printed["keys"][0]["x-tessera-state"] == "active"
