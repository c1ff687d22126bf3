"""``tessera keys …``: the server's signing keys (``/admin/v1/keys``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from tessera.cli.client import admin_client
from tessera.cli.output import JsonFlag, emit_json, line, table

app = typer.Typer(help="List, rotate and retire the server's signing keys.", no_args_is_help=True)
COLUMNS = ("kid", "alg", "state", "created_at", "activates_at", "deactivated_at", "retired_at")


@app.command("list")
def list_keys(json_output: JsonFlag = False) -> None:
    """List signing keys and their states."""
    with admin_client() as client:
        result = client.get("/admin/v1/keys")
    if json_output:
        emit_json(result)
        return
    keys = result.get("keys", [])
    table(f"{len(keys)} signing key(s)", COLUMNS, [[key.get(c) for c in COLUMNS] for key in keys])


@app.command("rotate")
def rotate(
    now: Annotated[bool, typer.Option("--now", help="Sign with the new key at once.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Create a new signing key; it is published before it signs (unless --now)."""
    with admin_client() as client:
        result = client.post("/admin/v1/keys/rotate", {"immediate": now})
    if json_output:
        emit_json(result)
    else:
        line(f"new signing key {result['kid']} activates at {result.get('activates_at')}")


@app.command("retire")
def retire(
    kid: Annotated[str, typer.Argument(metavar="KID", help="The signing key to retire.")],
    json_output: JsonFlag = False,
) -> None:
    """Emergency: retire a signing key now; every token it signed stops verifying."""
    with admin_client() as client:
        result = client.post(f"/admin/v1/keys/{quote(kid, safe='')}/retire")
    if json_output:
        emit_json(result)
    else:
        line(f"retired signing key {result.get('kid', kid)}")
