"""``tessera task …``: open, show, list and close tasks (``/admin/v1/tasks``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.client import CliError, admin_client
from tessera.cli.output import JsonFlag, emit_json, fields, line, table

app = typer.Typer(
    help="Tasks: the purpose, limits, deadline and budget tokens are bound to.", no_args_is_help=True
)

COLUMNS = ("id", "agent_id", "state", "deadline", "budget_remaining", "purpose")
STATES = ("open", "closed", "expired")


def _path(task_id: str) -> str:
    return "/admin/v1/tasks/" + quote(task_id, safe="")


@app.command("open")
def open_task(
    *,
    agent: Annotated[str, typer.Option("--agent", metavar="ID", help="The agent the task is for.")],
    purpose: Annotated[str, typer.Option("--purpose", metavar="TEXT", help="What the task is for.")],
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", metavar="SECONDS", help="Deadline, from now.")
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option("--deadline", metavar="ISO-8601", help="Deadline, e.g. 2026-12-01T17:00:00Z."),
    ] = None,
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", metavar="R", help="A resource it may touch (repeatable)."),
    ] = None,
    action: Annotated[
        list[str] | None, typer.Option("--action", metavar="A", help="An action it may take (repeatable).")
    ] = None,
    budget: Annotated[
        int | None, typer.Option("--budget", metavar="N", help="At most N authorization decisions.")
    ] = None,
    task_id: Annotated[
        str | None, typer.Option("--id", metavar="TASK_ID", help="Choose the id (default: generated).")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Open a task for an agent; tokens bound to it inherit its limits."""
    if (expires_in is None) == (deadline is None):
        raise CliError("give exactly one of --expires-in and --deadline")
    body: dict[str, Any] = {
        "agent_id": agent,
        "purpose": purpose,
        "resources": list(resource or []),
        "actions": list(action or []),
    }
    for name, value in (
        ("expires_in", expires_in),
        ("deadline", deadline),
        ("budget", budget),
        ("id", task_id),
    ):
        if value is not None:
            body[name] = value
    with admin_client() as client:
        task = client.post("/admin/v1/tasks", body)
    if json_output:
        emit_json(task)
    else:
        line(f"{task['id']}: open until {task['deadline']}")


@app.command("show")
def show(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID", help="The task.")],
    json_output: JsonFlag = False,
) -> None:
    """Show a task, its limits and how much of its budget is left."""
    with admin_client() as client:
        task = client.get(_path(task_id))
    if json_output:
        emit_json(task)
    else:
        fields(task, list(task))


@app.command("list")
def list_tasks(
    agent: Annotated[str | None, typer.Option("--agent", metavar="ID", help="Only this agent's.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", metavar="STATE", help="open, closed or expired.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List tasks."""
    if state is not None and state not in STATES:
        raise CliError(f"unknown state '{state}': open, closed or expired")
    params = {k: v for k, v in (("agent", agent), ("state", state)) if v is not None}
    with admin_client() as client:
        result = client.get("/admin/v1/tasks", params=params or None)
    if json_output:
        emit_json(result)
        return
    tasks = result.get("tasks", [])
    table(f"{len(tasks)} task(s)", COLUMNS, [[t.get(c) for c in COLUMNS] for t in tasks])


@app.command("close")
def close(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID", help="The task.")],
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why; kept in the record.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Close a task: its tokens, and every token delegated from them, are revoked."""
    with admin_client() as client:
        result = client.post(_path(task_id) + "/close", {"reason": reason} if reason else {})
    if json_output:
        emit_json(result)
    else:
        line(f"{result['id']}: {result['state']}; revoked {result.get('revoked_tokens', 0)} token(s)")
