"""``tessera kill …``: the kill switch (``/admin/v1/kill``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.client import CliError, admin_client
from tessera.cli.output import JsonFlag, emit_json, line, table

app = typer.Typer(
    help="Stop an agent, a task, a delegator's chains or an owner's agents at once; list and release.",
    invoke_without_command=True,
)
Target = Annotated[str | None, typer.Option(metavar="ID")]
COLUMNS = ("id", "scope", "target", "reason", "revoked_tokens", "created_at", "released_at")


@app.callback()
def kill(  # noqa: PLR0917 - Typer passes options positionally
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", metavar="ID", help="An agent.")] = None,
    task: Annotated[str | None, typer.Option("--task", metavar="ID", help="Every token of a task.")] = None,
    delegator: Annotated[
        str | None, typer.Option("--delegator", metavar="SUBJECT", help="Everything SUBJECT delegated.")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--all-agents-of", metavar="OWNER", help="Every agent of an owner.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", metavar="TEXT", help="Why (required).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Revoke every live token in scope and refuse new ones until released."""
    chosen = {
        k: v for k, v in (("agent", agent), ("task", task), ("delegator", delegator), ("owner", owner)) if v
    }
    if ctx.invoked_subcommand is not None:
        if chosen:
            raise CliError(f"'{ctx.invoked_subcommand}' takes no scope option")
        return
    if len(chosen) != 1:
        raise CliError("give exactly one of --agent, --task, --delegator or --all-agents-of")
    if not reason:
        raise CliError("--reason is required")
    with admin_client() as client:
        rule = client.post("/admin/v1/kill", {**chosen, "reason": reason})
    if json_output:
        emit_json(rule)
        return
    revoked = rule["revoked_tokens"]
    line(f"{rule['id']}: {rule['scope']} '{rule['target']}' stopped ({revoked} live token(s) revoked)")


@app.command("list")
def list_kills(
    all_rules: Annotated[bool, typer.Option("--all", help="Include released kill switches.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """List active kill switches."""
    with admin_client() as client:
        result = client.get("/admin/v1/kill", params={"all": "true"} if all_rules else None)
    if json_output:
        emit_json(result)
        return
    rules: list[dict[str, Any]] = result.get("kills", [])
    table(f"{len(rules)} kill switch(es)", COLUMNS, [[r.get(c) for c in COLUMNS] for r in rules])


@app.command("release")
def release(
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="The kill switch's id.")],
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why (required).")],
    json_output: JsonFlag = False,
) -> None:
    """Release a kill switch: tokens may be issued again (revoked ones stay revoked)."""
    with admin_client() as client:
        rule = client.request("DELETE", f"/admin/v1/kill/{quote(rule_id, safe='')}", json={"reason": reason})
    if json_output:
        emit_json(rule)
        return
    line(f"{rule['id']}: released")
