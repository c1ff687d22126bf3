"""``tessera access …``: grants (list, revoke) and break-glass emergency access (grant, list, review)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from tessera.cli.client import admin_client
from tessera.cli.output import JsonFlag, emit_json, fields, line, table

app = typer.Typer(help="Time-boxed grants and break-glass access.", no_args_is_help=True)
break_glass = typer.Typer(
    help="Emergency access: granted by an admin, loudly recorded, reviewed.", no_args_is_help=True
)
app.add_typer(break_glass, name="break-glass")
GRANT_COLUMNS = ("id", "kind", "state", "agent_id", "granted_by", "expires_at", "tokens")
BREAK_GLASS_FIELDS = (
    "id",
    "state",
    "agent_id",
    "granted_by",
    "justification",
    "created_at",
    "expires_at",
    "revoked_at",
    "reviewed_by",
    "review_note",
)


@app.command("list")
def list_grants(
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's grants.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="jit, approval or break_glass.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only grants in force now.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """List grants, newest first."""
    params = {"active": "true" if active else "false"}
    if agent:
        params["agent"] = agent
    if kind:
        params["kind"] = kind
    with admin_client() as client:
        result = client.get("/admin/v1/access/grants", params=params)
    if json_output:
        emit_json(result)
        return
    grants = result.get("grants", [])
    table(f"{len(grants)} grant(s)", GRANT_COLUMNS, [[g.get(c) for c in GRANT_COLUMNS] for g in grants])


@app.command("revoke")
def revoke(
    grant_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "revoked by an admin",
    json_output: JsonFlag = False,
) -> None:
    """Revoke a grant and every token issued under it."""
    with admin_client() as client:
        result = client.post(f"/admin/v1/access/grants/{quote(grant_id, safe='')}/revoke", {"reason": reason})
    if json_output:
        emit_json(result)
    else:
        line(f"{grant_id}: revoked ({result.get('tokens', 0)} token(s))")


@break_glass.command("grant")
def grant(
    agent_id: str,
    *,
    justification: Annotated[
        str, typer.Option("--justification", help="Why (required, recorded, notified).")
    ],
    duration: Annotated[int, typer.Option("--duration", help="Seconds (short; capped by the server).")] = 900,
    json_output: JsonFlag = False,
) -> None:
    """Emergency access: the agent's approval-gated actions go through until it expires."""
    body = {"agent_id": agent_id, "justification": justification, "duration": duration}
    with admin_client() as client:
        result = client.post("/admin/v1/access/break-glass", body)
    if json_output:
        emit_json(result)
    else:
        line(f"{result['id']}: break-glass for {agent_id} until {result['expires_at']}")


@break_glass.command("list")
def list_break_glass(json_output: JsonFlag = False) -> None:
    """Every break-glass grant, with how often it was used and whether it was reviewed."""
    with admin_client() as client:
        result = client.get("/admin/v1/access/break-glass")
    if json_output:
        emit_json(result)
        return
    columns = ("id", "state", "agent_id", "granted_by", "uses", "reviewed_by", "justification")
    grants = result.get("grants", [])
    table(f"{len(grants)} break-glass grant(s)", columns, [[g.get(c) for c in columns] for g in grants])


@break_glass.command("show")
def show(grant_id: str, json_output: JsonFlag = False) -> None:
    """A break-glass grant and each recorded use."""
    with admin_client() as client:
        result = client.get(f"/admin/v1/access/break-glass/{quote(grant_id, safe='')}")
    if json_output:
        emit_json(result)
        return
    fields(result, BREAK_GLASS_FIELDS)
    uses = result.get("uses", [])
    table(
        f"{len(uses)} use(s)",
        ("ts_ms", "actor", "data"),
        [[u.get("ts_ms"), u.get("actor"), u.get("data")] for u in uses],
    )


@break_glass.command("review")
def review(
    grant_id: str,
    note: Annotated[str, typer.Option("--note", help="The review's conclusion (recorded).")],
    json_output: JsonFlag = False,
) -> None:
    """Record the after-the-fact review of a break-glass grant."""
    with admin_client() as client:
        result = client.post(
            f"/admin/v1/access/break-glass/{quote(grant_id, safe='')}/review", {"note": note}
        )
    if json_output:
        emit_json(result)
    else:
        line(f"{grant_id}: reviewed by {result['reviewed_by']}")
