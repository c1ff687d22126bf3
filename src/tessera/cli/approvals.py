"""``tessera approvals …``: what agents are waiting for, and answering them (approvers)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.client import admin_client
from tessera.cli.output import JsonFlag, emit_json, fields, line, table

app = typer.Typer(help="Answer agents' access requests (approvers).", no_args_is_help=True)
LIST_COLUMNS = ("id", "status", "agent_id", "purpose", "approver_groups", "approvals_required", "expires_at")
SHOW_FIELDS = (
    "id",
    "status",
    "agent",
    "owner",
    "task_id",
    "purpose",
    "asked",
    "asked_hash",
    "duration",
    "current_risk",
    "approver_groups",
    "escalation_groups",
    "approvals_required",
    "separation",
    "votes",
    "policies",
    "expires_at",
)


def _path(request_id: str) -> str:
    return f"/admin/v1/approvals/{quote(request_id, safe='')}"


def _flatten(view: dict[str, Any]) -> dict[str, Any]:
    shown = dict(view)
    agent = view.get("agent") or {}
    shown["agent"] = f"{agent.get('id')} ({agent.get('name', '-')}, {agent.get('state')})"
    shown["asked"] = json.dumps(view.get("asked"), sort_keys=True)
    shown["votes"] = [f"{v['username']}:{v['decision']}" for v in view.get("votes", [])]
    return shown


@app.command("list")
def list_requests(
    status: Annotated[
        str, typer.Option("--status", help="pending, approved, denied, expired, redeemed or all.")
    ] = "pending",
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's requests.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """List access requests (pending ones by default)."""
    params = {"status": status}
    if agent:
        params["agent"] = agent
    with admin_client() as client:
        result = client.get("/admin/v1/approvals", params=params)
    if json_output:
        emit_json(result)
        return
    found = result.get("requests", [])
    table(f"{len(found)} request(s)", LIST_COLUMNS, [[r.get(c) for c in LIST_COLUMNS] for r in found])


def _show(request_id: str) -> dict[str, Any]:
    with admin_client() as client:
        view: dict[str, Any] = client.get(_path(request_id))
    return view


@app.command("show")
def show(request_id: str, json_output: JsonFlag = False) -> None:
    """Everything an approver needs: who asks, exactly what, why, for how long, risk and recent activity."""
    view = _show(request_id)
    if json_output:
        emit_json(view)
        return
    fields(_flatten(view), SHOW_FIELDS)
    activity = view.get("recent_activity", [])
    table(
        "recent activity",
        ("at", "type", "outcome", "action", "resource"),
        [[a.get(c) for c in ("at", "type", "outcome", "action", "resource")] for a in activity],
    )


@app.command("approve")
def approve(
    request_id: str,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded in the audit log).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Approve exactly what is shown: the request's hash is sent back, so a changed request is refused."""
    view = _show(request_id)
    if not yes:
        fields(_flatten(view), SHOW_FIELDS)
        typer.confirm("approve this request?", abort=True)
    body = {"asked_hash": view["asked_hash"], "reason": reason}
    with admin_client() as client:
        result = client.post(f"{_path(request_id)}/approve", body)
    if json_output:
        emit_json(result)
    else:
        line(f"{request_id}: {result['status']}")


@app.command("deny")
def deny(
    request_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (required; the agent sees it).")],
    json_output: JsonFlag = False,
) -> None:
    """Deny a request."""
    with admin_client() as client:
        result = client.post(f"{_path(request_id)}/deny", {"reason": reason})
    if json_output:
        emit_json(result)
    else:
        line(f"{request_id}: {result['status']}")
