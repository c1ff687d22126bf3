"""``tessera agent update``: change an agent's registration; policy sees it at once."""

from __future__ import annotations

from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


def test_update_changes_only_what_is_given(cli: Cli, server: ServerProcess) -> None:
    agent_id = cli.ok(
        "agent", "create", "bot", "--owner", "o@example.com", "--description", "keeps this",
        "--attr", "role=reader", "--attr", "team=blue", "--label", "prod", "--scopes", "a:read",
        "--resource-uri", "https://api.example/a",
    ).strip()  # fmt: skip
    out = cli.ok(
        "agent", "update", agent_id,
        "--name", "renamed", "--attr", "role=writer", "--segment", "docs",
        "--label", "eu", "--label", "beta", "--scopes", "a:read a:write",
        "--resource-uri", "https://api.example/b", "--max-ttl", "120", "--require-dpop",
        "--expires-at", "2099-01-01T00:00:00Z",
    )  # fmt: skip
    assert out == (
        f"{agent_id}: updated attributes, expires_at, labels, max_ttl, name, require_dpop, "
        "resource_uris, scopes, segment\n"
    )
    agent = cli.json("agent", "show", agent_id)
    assert agent["name"] == "renamed"
    assert agent["description"] == "keeps this"
    assert agent["attributes"] == {"role": "writer"}  # the map is replaced, not merged
    assert agent["segment"] == "docs"
    assert agent["labels"] == ["eu", "beta"]
    assert agent["scopes"] == ["a:read", "a:write"]
    assert agent["resource_uris"] == ["https://api.example/b"]
    assert agent["max_ttl"] == 120
    assert agent["require_dpop"] is True
    assert agent["expires_at"].startswith("2099-01-01T00:00:00")

    updated = cli.json(
        "agent", "update", agent_id, "--no-require-dpop", "--clear-attributes",
        "--clear-labels", "--clear-resource-uris", "--description", "new",
    )  # fmt: skip
    assert updated["require_dpop"] is False
    assert updated["segment"] == "docs"
    assert (updated["attributes"], updated["labels"], updated["resource_uris"]) == ({}, [], [])
    assert updated["description"] == "new"
    assert updated["name"] == "renamed"

    with server.admin() as admin:
        records = admin.get("/admin/v1/audit/records", params={"type": "agent.updated"}).json()["records"]
    assert len(records) == 2
    assert records[0]["subject"] == agent_id


def test_policy_sees_the_new_attributes(cli: Cli) -> None:
    bundle = cli.workdir / "bundle"
    cli.ok("policy", "init", str(bundle))
    (bundle / "writers.cedar").write_text(
        '@id("writers-write")\n'
        'permit (principal is Agent, action == Action::"write", resource is Resource)\n'
        'when { principal.hasTag("role") && principal.getTag("role") == "writer" };\n'
    )
    cli.ok("policy", "apply", str(bundle))
    agent_id = cli.ok("agent", "create", "bot", "--owner", "o@example.com", "--attr", "role=reader").strip()
    cli.ok("resource", "add", "doc-1")
    ask = ("policy", "explain", "--principal", agent_id, "--action", "write", "--resource", "doc-1")
    assert cli.json(*ask)["decision"] is False
    cli.ok("agent", "update", agent_id, "--attr", "role=writer")
    decision = cli.json(*ask)
    assert decision["decision"] is True
    assert decision["context"]["determining_policies"] == ["writers-write"]


def test_update_errors(cli: Cli) -> None:
    agent_id = cli.ok("agent", "create", "bot", "--owner", "o@example.com").strip()
    assert cli.fails("agent", "update", agent_id).startswith("error: nothing to update")
    assert cli.fails("agent", "update", "agt_nope", "--name", "x") == "error: not_found: no agent 'agt_nope'"
    assert cli.fails("agent", "update", agent_id, "--attr", "novalue") == (
        "error: malformed --attr 'novalue': expected KEY=VALUE"
    )
    assert cli.fails("agent", "update", agent_id, "--label", "x", "--clear-labels") == (
        "error: --clear-labels contradicts the values given"
    )
    assert cli.fails("agent", "update", agent_id, "--max-ttl", "1").startswith("error: invalid_request: ")
    assert cli.fails("agent", "update", agent_id, "--expires-at", "2001-01-01T00:00:00Z") == (
        "error: invalid_request: expires_at is in the past"
    )
    cli.ok("agent", "decommission", agent_id)
    assert cli.fails("agent", "update", agent_id, "--name", "x").startswith("error: conflict: ")
