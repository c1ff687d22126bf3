"""``tessera policy explain``: the server's PDP decides, and says why."""

from __future__ import annotations

from pathlib import Path

from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli

READERS = """
@id("readers-read-docs")
@max_ttl("60")
permit (principal is Agent, action == Action::"read", resource is Resource)
when {
  principal.hasTag("role") && principal.getTag("role") == "reader" &&
  resource has kind && resource.kind == "doc"
};

// Overflows when evaluated: an erroring permit is skipped, and the error reported.
@id("erroring-permit")
permit (principal is Agent, action == Action::"list", resource is Resource)
when { context.delegation_depth + 9223372036854775807 + 1 > 0 };
"""


def explained(output: str) -> dict[str, str]:
    """The ``name value`` lines of the explanation, as a dict."""
    rows: dict[str, str] = {}
    for row in output.splitlines():
        name, _, value = row.partition(" ")
        if name and not row.startswith(" "):
            rows[name] = value.strip()
    return rows


def reader_setup(cli: Cli) -> tuple[str, str]:
    bundle = cli.workdir / "bundle"
    cli.ok("policy", "init", str(bundle))
    (bundle / "readers.cedar").write_text(READERS)
    version = cli.ok("policy", "apply", str(bundle)).strip()
    agent_id = cli.ok(
        "agent",
        "create",
        "reader-bot",
        "--owner",
        "o@example.com",
        "--segment",
        "docs",
        "--attr",
        "role=reader",
    ).strip()
    cli.ok("resource", "add", "doc-1", "--attr", "kind=doc", "--attr", "segment=docs")
    cli.ok("resource", "add", "Resource::doc-2", "--attr", "kind=doc", "--attr", "segment=finance")
    return agent_id, version


def test_explain_allow_deny_forbid_and_errors(cli: Cli, server: ServerProcess) -> None:
    agent_id, version = reader_setup(cli)
    allow = explained(
        cli.ok("policy", "explain", "--principal", agent_id, "--action", "read", "--resource", "doc-1")
    )
    assert allow["decision"] == "allow"
    assert allow["determining_policies"] == "readers-read-docs"
    assert allow["errors"] == "-"
    assert allow["obligations"] == "max_ttl=60"
    assert allow["policy_version"] == version
    assert allow["decision_id"].startswith("dec_")
    assert '"network_zone": "local"' in allow["context"]

    forbid = explained(
        cli.ok(
            "policy", "explain",
            "--principal", f"Agent::{agent_id}", "--action", "read", "--resource", "Resource::doc-2",
        )
    )  # fmt: skip
    assert (forbid["decision"], forbid["determining_policies"]) == ("deny", "forbid-cross-segment")

    erroring = cli.json(
        "policy", "explain", "--principal", agent_id, "--action", "list", "--resource", "doc-1",
        "--context", '{"posture": {"compliant": true}}',
    )  # fmt: skip
    assert erroring["decision"] is False
    assert erroring["context"]["determining_policies"] == []
    assert any("erroring-permit" in error for error in erroring["context"]["errors"])
    assert erroring["evaluated_context"]["posture"] == {"compliant": True}
    assert erroring["evaluated_context"]["agent_state"] == "active"

    with server.admin() as admin:
        decisions = admin.get("/admin/v1/audit/records", params={"type": "decision"}).json()["records"]
    assert [d["decision"]["outcome"] for d in decisions] == ["deny", "deny", "permit"]
    assert decisions[-1]["decision"]["decision_id"] == allow["decision_id"]


def test_explain_context_from_a_file_and_derived_values_win(cli: Cli) -> None:
    agent_id, _ = reader_setup(cli)
    context_file = cli.workdir / "context.json"
    context_file.write_text('{"risk": 0, "network_zone": "corporate", "client_ip": "192.0.2.7"}')
    result = cli.json(
        "policy", "explain", "--principal", agent_id, "--action", "read", "--resource", "doc-1",
        "--context", f"@{context_file}",
    )  # fmt: skip
    evaluated = result["evaluated_context"]
    # A caller may say where the request comes from; the zone is derived from that address.
    assert (evaluated["client_ip"], evaluated["network_zone"]) == ("192.0.2.7", "unknown")


def test_explain_usage_errors(offline_cli: Cli, tmp_path: Path) -> None:
    base = ("policy", "explain", "--action", "read", "--resource", "doc-1")
    assert (
        offline_cli.fails(*base, "--principal", "::x")
        == "error: malformed --principal '::x': expected Type::id"
    )
    assert offline_cli.fails(*base, "--principal", "a", "--context", "[1]") == (
        "error: --context must be a json object"
    )
    assert (
        offline_cli.fails(*base, "--principal", "a", "--context", "{") == "error: --context is not valid json"
    )
    missing = tmp_path / "nope.json"
    assert offline_cli.fails(*base, "--principal", "a", "--context", f"@{missing}") == (
        f"error: cannot read context file '{missing}': no such file or directory"
    )
    assert "Missing option '--principal'" in offline_cli.fails(*base)
