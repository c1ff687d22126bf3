"""``tessera kill …``, ``tessera agent risk|release``, ``tessera playbook …``, ``tessera receiver …``
against a real server."""

from __future__ import annotations

from tests.unit.cli.conftest import Cli


def test_kill_list_and_release(cli: Cli) -> None:
    agent_id = cli.ok("agent", "create", "a", "--owner", "o@example.com").strip()
    out = cli.ok("kill", "--agent", agent_id, "--reason", "incident 9")
    rule_id = out.split(":", 1)[0]
    assert out == f"{rule_id}: agent '{agent_id}' stopped (0 live token(s) revoked)\n"
    listed = cli.json("kill", "list")["kills"]
    assert [(k["id"], k["scope"], k["target"], k["reason"]) for k in listed] == [
        (rule_id, "agent", agent_id, "incident 9")
    ]
    assert rule_id in cli.ok("kill", "list")
    assert cli.ok("kill", "release", rule_id, "--reason", "contained") == f"{rule_id}: released\n"
    assert cli.json("kill", "list")["kills"] == []
    assert cli.json("kill", "list", "--all")["kills"][0]["released_reason"] == "contained"
    owner = cli.json("kill", "--all-agents-of", "o@example.com", "--reason", "owner left")
    assert (owner["scope"], owner["target"]) == ("owner", "o@example.com")
    assert cli.json("kill", "--task", "T-1", "--reason", "x")["scope"] == "task"
    assert cli.json("kill", "--delegator", "alice@example.com", "--reason", "x")["scope"] == "delegator"


def test_kill_refuses_bad_invocations_in_one_line(cli: Cli) -> None:
    assert "exactly one of" in cli.fails("kill", "--reason", "x")
    assert "exactly one of" in cli.fails("kill", "--agent", "a", "--task", "t", "--reason", "x")
    assert "--reason is required" in cli.fails("kill", "--task", "t")
    assert "agt_nobody" in cli.fails("kill", "--agent", "agt_nobody", "--reason", "x")
    assert "not found" in cli.fails("kill", "release", "kill_nothing", "--reason", "x")
    assert "takes no scope option" in cli.fails("kill", "--agent", "a", "list")


def test_agent_risk_and_release_needs_a_reason(cli: Cli) -> None:
    agent_id = cli.ok("agent", "create", "a", "--owner", "o@example.com").strip()
    assert cli.ok("agent", "risk", agent_id) == f"{agent_id}: risk 0 (learning)\n"
    risk = cli.json("agent", "risk", agent_id)
    assert risk == {"agent_id": agent_id, "score": 0, "reasons": [], "learning": True, "updated_at": None}
    cli.ok("agent", "quarantine", agent_id, "--reason", "odd")
    assert "--reason" in cli.fails("agent", "release", agent_id)
    assert cli.ok("agent", "release", agent_id, "--reason", "checked") == f"{agent_id}: active\n"


def test_playbooks_validate_apply_list(cli: Cli) -> None:
    listed = cli.json("playbook", "list")
    assert listed["source"] == "default"
    assert "contain-high-risk" in cli.ok("playbook", "list")
    good = cli.workdir / "good.yaml"
    good.write_text("playbooks:\n  - name: watch\n    when: {risk_at_least: 30}\n    actions: [alert]\n")
    assert cli.ok("playbook", "validate", str(good)) == f"{good}: valid, 1 playbook(s)\n"
    assert cli.ok("playbook", "apply", str(good)) == "applied 1 playbook(s)\n"
    assert [p["name"] for p in cli.json("playbook", "list")["playbooks"]] == ["watch"]
    bad = cli.workdir / "bad.yaml"
    bad.write_text("playbooks:\n  - name: watch\n    when: {risk_at_least: 300}\n    actions: [alert]\n")
    assert "got '300'" in cli.fails("playbook", "apply", str(bad))
    assert "cannot read" in cli.fails("playbook", "validate", str(cli.workdir / "missing.yaml"))


def test_receivers(cli: Cli) -> None:
    out = cli.ok("receiver", "add", "https://soc.example/caep", "--description", "soc")
    receiver_id = out.split(":", 1)[0]
    assert out == f"{receiver_id}: https://soc.example/caep\n"
    assert "https://soc.example/caep" in cli.ok("receiver", "list")
    assert "http(s) url" in cli.fails("receiver", "add", "ftp://soc.example")
    assert cli.ok("receiver", "remove", receiver_id) == f"{receiver_id}: removed\n"
    assert cli.json("receiver", "list")["receivers"] == []
