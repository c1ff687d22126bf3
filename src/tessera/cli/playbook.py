"""``tessera playbook …`` and ``tessera receiver …``: response playbooks and SET receivers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.client import CliError, admin_client
from tessera.cli.output import JsonFlag, emit_json, line, table

app = typer.Typer(help="Response playbooks: validate, apply and list.", no_args_is_help=True)
receivers = typer.Typer(help="Receivers of security event tokens (RFC 8935 push).", no_args_is_help=True)
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A playbook YAML file.")]


def read_yaml(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read '{path}': {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"'{path}' is not UTF-8 text") from None


def when_text(when: dict[str, Any]) -> str:
    parts = []
    if "risk_at_least" in when:
        parts.append(f"risk ≥ {when['risk_at_least']}")
    if "detectors" in when:
        parts.append("detector in " + ",".join(when["detectors"]))
    if "count" in when:
        count = when["count"]
        parts.append(f"{count['at_least']} x {count['detector']} in {int(count['within'])} s")
    return " and ".join(parts)


def print_playbooks(result: dict[str, Any]) -> None:
    books = result.get("playbooks", [])
    rows = [
        [
            b["name"],
            when_text(b.get("when", {})),
            ", ".join(a if isinstance(a, str) else f"{k}={v}" for a in b["actions"] for k, v in _pairs(a)),
            int(b.get("cooldown", 0)),
        ]
        for b in books
    ]
    table(f"{len(books)} playbook(s) ({result.get('source')})", ("name", "when", "actions", "cooldown"), rows)


def _pairs(action: Any) -> list[tuple[str, Any]]:
    return list(action.items()) if isinstance(action, dict) else [(action, None)]


@app.command("validate")
def validate(path: FileArgument, json_output: JsonFlag = False) -> None:
    """Check a playbook file without applying it."""
    with admin_client() as client:
        result = client.post("/admin/v1/playbooks/validate", {"yaml": read_yaml(path)})
    if json_output:
        emit_json(result)
        return
    line(f"{path}: valid, {len(result.get('playbooks', []))} playbook(s)")


@app.command("apply")
def apply(path: FileArgument, json_output: JsonFlag = False) -> None:
    """Replace the active playbooks with those in FILE."""
    with admin_client() as client:
        result = client.request("PUT", "/admin/v1/playbooks", json={"yaml": read_yaml(path)})
    if json_output:
        emit_json(result)
        return
    line(f"applied {len(result.get('playbooks', []))} playbook(s)")


@app.command("list")
def list_playbooks(json_output: JsonFlag = False) -> None:
    """Show the active playbooks (the default set until some are applied)."""
    with admin_client() as client:
        result = client.get("/admin/v1/playbooks")
    if json_output:
        emit_json(result)
        return
    print_playbooks(result)


@receivers.command("add")
def add_receiver(
    url: Annotated[str, typer.Argument(metavar="URL", help="The receiver's push endpoint.")],
    description: Annotated[str, typer.Option("--description", metavar="TEXT")] = "",
    json_output: JsonFlag = False,
) -> None:
    """Register a receiver: playbook alerts push a CAEP SET to it."""
    with admin_client() as client:
        receiver = client.post("/admin/v1/receivers", {"url": url, "description": description})
    if json_output:
        emit_json(receiver)
        return
    line(f"{receiver['id']}: {receiver['url']}")


@receivers.command("list")
def list_receivers(json_output: JsonFlag = False) -> None:
    """List receivers (registered here, and configured with TESSERA_SET_RECEIVERS)."""
    with admin_client() as client:
        result = client.get("/admin/v1/receivers")
    if json_output:
        emit_json(result)
        return
    rows = [[r["id"], r["url"], r["description"], r["created_at"]] for r in result.get("receivers", [])]
    rows += [["(config)", url, "", ""] for url in result.get("configured", [])]
    table(f"{len(rows)} receiver(s)", ("id", "url", "description", "created_at"), rows)


@receivers.command("remove")
def remove_receiver(
    receiver_id: Annotated[str, typer.Argument(metavar="ID")], json_output: JsonFlag = False
) -> None:
    """Remove a registered receiver."""
    with admin_client() as client:
        result = client.delete(f"/admin/v1/receivers/{quote(receiver_id, safe='')}")
    if json_output:
        emit_json(result)
        return
    line(f"{receiver_id}: removed")
