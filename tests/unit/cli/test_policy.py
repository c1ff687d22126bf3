"""``tessera policy …``: bundles written, validated and tested locally; applied, diffed, rolled back."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tessera.policy.service import starter_bundle
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli

BROKEN_POLICY = """// a policy that reads an attribute agents do not have

@id("reads-nope")
permit (principal is Agent, action == Action::"read", resource)
when { principal.nope == 1 };
"""

FAILING_CASE = {
    "name": "research reads anything (wrong on purpose)",
    "principal": "Agent::research-bot",
    "action": "read",
    "resource": "Resource::rec-9",
    "expect": "allow",
    "policies": ["research-reads-task-records"],
}


def starter(cli: Cli, name: str = "bundle") -> Path:
    directory = cli.workdir / name
    cli.ok("policy", "init", str(directory))
    return directory


def test_init_writes_the_starter_bundle_and_refuses_a_non_empty_directory(offline_cli: Cli) -> None:
    directory = offline_cli.workdir / "new" / "bundle"
    result = offline_cli("policy", "init", str(directory))
    assert result.exit_code == 0, result.stderr
    expected = starter_bundle().files
    assert result.stdout.splitlines() == [(directory / name).as_posix() for name in sorted(expected)]
    assert "next: tessera policy test" in result.stderr
    for name, content in expected.items():
        assert (directory / name).read_text() == content
    before = (directory / "guardrails.cedar").read_text()
    line = offline_cli.fails("policy", "init", str(directory))
    assert line == f"error: refusing to write into '{directory}': it is not empty"
    assert (directory / "guardrails.cedar").read_text() == before
    a_file = offline_cli.workdir / "file.txt"
    a_file.write_text("x")
    assert "is not a directory" in offline_cli.fails("policy", "init", str(a_file))
    empty = offline_cli.workdir / "empty"
    empty.mkdir()
    written = offline_cli.json("policy", "init", str(empty))
    assert written["files"] == sorted(expected)
    assert written["version"] == starter_bundle().version


def test_validate_a_good_bundle(offline_cli: Cli) -> None:
    directory = starter(offline_cli)
    version = starter_bundle().version
    assert offline_cli.ok("policy", "validate", str(directory)) == f"ok: 7 policies, version {version}\n"
    report = offline_cli.json("policy", "validate", str(directory))
    assert report["ok"] is True
    assert "forbid-high-risk" in report["policies"]


def test_validate_prints_each_problem_as_file_line_and_fails(offline_cli: Cli) -> None:
    directory = starter(offline_cli)
    (directory / "extra.cedar").write_text(BROKEN_POLICY)
    (directory / "tokens.cedar").write_text("permit (principal, action, resource) when { 1 + };\n")
    result = offline_cli("policy", "validate", str(directory))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{directory.as_posix()}/extra.cedar:3: for policy `reads-nope`, "
        "attribute `nope` on entity type `Agent` not found",
        f"{directory.as_posix()}/tokens.cedar:1: unexpected token `}}`",
    ]
    assert result.stderr == f"error: 2 problem(s) in bundle '{directory}'\n"
    assert "Traceback" not in result.output
    as_json = offline_cli("policy", "validate", str(directory), "--json")
    assert as_json.exit_code == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert [(p["file"], p["line"]) for p in problems] == [("extra.cedar", 3), ("tokens.cedar", 1)]


def test_validate_refuses_what_is_not_a_bundle(offline_cli: Cli) -> None:
    missing = offline_cli.workdir / "missing"
    assert offline_cli.fails("policy", "validate", str(missing)) == f"error: '{missing}' is not a directory"
    empty = offline_cli.workdir / "empty"
    empty.mkdir()
    assert offline_cli.fails("policy", "validate", str(empty)) == "error: bundle has no *.cedar policy files"
    directory = starter(offline_cli)
    (directory / "entities.json").write_text("[{")
    result = offline_cli("policy", "validate", str(directory))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{directory.as_posix()}/entities.json:1: not valid json")


def test_policy_test_passes_the_starter_bundle(offline_cli: Cli) -> None:
    directory = starter(offline_cli)
    lines = offline_cli.ok("policy", "test", str(directory)).splitlines()
    assert len(lines) == 14
    assert all(line.startswith("PASS  tests/starter.yaml: ") for line in lines[:-1])
    assert lines[-1] == "13 passed, 0 failed"
    report = offline_cli.json("policy", "test", str(directory))
    assert (report["passed"], report["failed"]) == (13, 0)
    assert report["cases"][0]["determining_policies"] == ["issue-tokens-within-registered-scopes"]


def test_policy_test_failing_case_exits_non_zero_with_reasons(offline_cli: Cli) -> None:
    directory = starter(offline_cli)
    tests = directory / "tests" / "starter.yaml"
    data = yaml.safe_load(tests.read_text())
    data["cases"].append(FAILING_CASE)
    tests.write_text(yaml.safe_dump(data))
    result = offline_cli("policy", "test", str(directory))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    assert lines[-2] == (
        "FAIL  tests/starter.yaml: research reads anything (wrong on purpose) - "
        "expected allow, got deny; expected policies ['research-reads-task-records'], got []"
    )
    assert lines[-1] == "13 passed, 1 failed"
    assert result.stderr == "error: 1 of 14 case(s) failed\n"
    as_json = offline_cli("policy", "test", str(directory), "--json")
    assert as_json.exit_code == 1
    failed = [c for c in json.loads(as_json.stdout)["cases"] if not c["passed"]]
    assert [(c["expected"], c["actual"]) for c in failed] == [("allow", "deny")]


def test_policy_test_with_no_cases_or_a_broken_test_file_fails(offline_cli: Cli) -> None:
    directory = starter(offline_cli)
    (directory / "tests" / "starter.yaml").unlink()
    result = offline_cli("policy", "test", str(directory))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no test cases in ")
    (directory / "tests" / "empty.yaml").write_text("cases: []\n")
    assert offline_cli.fails("policy", "test", str(directory)).startswith("error: no test cases in ")
    (directory / "tests" / "bad.yaml").write_text("cases: [{name: x, expect: maybe}]\n")
    line = offline_cli.fails("policy", "test", str(directory))
    assert line == "error: tests/bad.yaml case 1: 'expect' must be allow or deny"
    (directory / "extra.cedar").write_text(BROKEN_POLICY)
    result = offline_cli("policy", "test", str(directory))
    assert result.exit_code == 1
    assert "extra.cedar:3: for policy `reads-nope`" in result.stdout


def test_apply_versions_show_diff_rollback(cli: Cli, server: ServerProcess) -> None:
    directory = starter(cli)
    starter_version = starter_bundle().version
    assert cli.ok("policy", "apply", str(directory)) == f"{starter_version}\n"  # same content, same version
    guardrails = directory / "guardrails.cedar"
    guardrails.write_text(guardrails.read_text().replace("context.risk >= 80", "context.risk >= 50"))
    result = cli("policy", "apply", str(directory), "--note", "stricter risk")
    assert result.exit_code == 0, result.stderr
    stricter = result.stdout.strip()
    assert stricter != starter_version
    assert result.stderr == f"tessera: version {stricter} is active (7 policies)\n"
    listing = cli.ok("policy", "versions")
    assert "2 policy version(s)" in listing
    marked = [row.split() for row in listing.splitlines() if stricter in row or starter_version in row]
    assert [row[0] for row in marked] == ["*", starter_version]  # newest first, marked active
    versions = cli.json("policy", "versions")["versions"]
    assert [(v["version"], v["active"]) for v in versions] == [(stricter, True), (starter_version, False)]

    shown = cli.ok("policy", "show")
    assert shown.startswith(f"# version {stricter} (active)\n")
    assert "\n# ==> guardrails.cedar <==\n// Guardrails that apply to every action." in shown
    assert "context.risk >= 50" in shown
    assert cli.json("policy", "show", starter_version[:8])["files"] == starter_bundle().files
    out = cli.workdir / "copy"
    assert cli.ok("policy", "show", starter_version, "--out", str(out)) == (
        f"{starter_version} (inactive): 6 files written to {out}\n"
    )
    assert cli.ok("policy", "validate", str(out)).endswith(f"version {starter_version}\n")
    assert "not empty" in cli.fails("policy", "show", "--out", str(out))

    diff = cli.ok("policy", "diff", starter_version, stricter)
    assert f"--- {starter_version}/guardrails.cedar" in diff
    assert "-when { context.risk >= 80 };\n+when { context.risk >= 50 };" in diff
    assert cli.json("policy", "diff", starter_version[:6], stricter[:6])["diff"] == diff
    same = cli("policy", "diff", stricter, stricter)
    assert (same.exit_code, same.stdout) == (0, "")
    assert "have the same files" in same.stderr

    assert cli.ok("policy", "rollback", starter_version[:8]) == f"{starter_version}: active\n"
    assert cli.json("policy", "show", "active")["version"] == starter_version
    assert cli.json("policy", "rollback", stricter) == {"version": stricter, "active": True}

    with server.admin() as admin:
        records = admin.get("/admin/v1/audit/records", params={"type": "policy.*"}).json()["records"]
    assert [(r["type"], r["reason"]) for r in records[:3]] == [
        ("policy.rolled_back", None),
        ("policy.rolled_back", None),
        ("policy.applied", "stricter risk"),
    ]


def test_apply_reports_problems_locally_and_sends_nothing(cli: Cli) -> None:
    directory = starter(cli)
    (directory / "extra.cedar").write_text(BROKEN_POLICY)
    result = cli("policy", "apply", str(directory))
    assert result.exit_code == 1
    assert result.stdout == (
        f"{directory.as_posix()}/extra.cedar:3: for policy `reads-nope`, "
        "attribute `nope` on entity type `Agent` not found\n"
    )
    assert result.stderr.startswith("error: 1 problem(s) in bundle")
    assert len(cli.json("policy", "versions")["versions"]) == 1


def test_unknown_versions_and_servers_errors(cli: Cli) -> None:
    assert cli.fails("policy", "show", "ffffffff") == "error: not_found: no policy version 'ffffffff'"
    assert cli.fails("policy", "rollback", "ffffffff") == "error: not_found: no policy version 'ffffffff'"
    assert cli.fails("policy", "diff", "ffffffff", "active").startswith("error: not_found: ")
    assert cli.fails("policy", "diff", "ab", "cd").startswith("error: invalid_request: ")
