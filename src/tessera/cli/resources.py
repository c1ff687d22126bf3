"""``tessera resource …``: the resources and resource groups the PDP knows (``/admin/v1/resources``)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.agents import parse_attributes
from tessera.cli.client import CliError, admin_client
from tessera.cli.output import JsonFlag, emit_json, line, table

app = typer.Typer(help="Register the resources and resource groups policies decide on.", no_args_is_help=True)

DEFAULT_TYPE = "Resource"
COLUMNS = ("entity", "attributes", "parents", "updated_at")


def parse_ref(value: str, default_type: str | None = None, what: str = "entity") -> tuple[str, str]:
    """``Type::id``, ``Type::"id with ::"`` or, with ``default_type``, a bare ``id``: ``(type, id)``."""
    value = value.strip()
    if '::"' in value and value.endswith('"'):
        type_, _, rest = value.partition('::"')
        id_ = rest[:-1]
    elif "::" in value:
        type_, _, id_ = value.rpartition("::")
    elif default_type is not None:
        type_, id_ = default_type, value
    else:
        raise CliError(f"malformed {what} '{value}': expected Type::id")
    if not type_ or not id_:
        raise CliError(f"malformed {what} '{value}': expected Type::id")
    return type_, id_


def ref(type_: str, id_: str) -> str:
    return f"{type_}::{id_}"


def parse_json_attributes(pairs: list[str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"malformed --attr-json '{pair}': expected KEY=JSON")
        try:
            attributes[key.strip()] = json.loads(raw)
        except ValueError:
            raise CliError(f"--attr-json '{key.strip()}': the value is not json") from None
    return attributes


def parents_of(entity: dict[str, Any]) -> list[str]:
    return [
        ref(str(p.get("type")), str(p.get("id"))) for p in entity.get("parents", []) if isinstance(p, dict)
    ]


@app.command("add")
def add(
    entity: Annotated[
        str, typer.Argument(metavar="TYPE::ID", help="The resource (type Resource if only an id is given).")
    ],
    *,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", metavar="KEY=VALUE", help="A string attribute (repeatable)."),
    ] = None,
    attr_json: Annotated[
        list[str] | None,
        typer.Option(
            "--attr-json",
            metavar="KEY=JSON",
            help='An attribute of another type: true, 3, ["a","b"], {…} (repeatable).',
        ),
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option("--parent", metavar="TYPE::ID", help="A group it belongs to (repeatable)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Add a resource, or replace it (attributes and parents) if it exists."""
    type_, id_ = parse_ref(entity, DEFAULT_TYPE, "resource")
    attributes: dict[str, Any] = dict(parse_attributes(attr or []))
    for key, value in parse_json_attributes(attr_json or []).items():
        if key in attributes:
            raise CliError(f"attribute '{key}' is given twice")
        attributes[key] = value
    parents = [parse_ref(p, None, "--parent") for p in parent or []]
    body = {
        "type": type_,
        "id": id_,
        "attributes": attributes,
        "parents": [{"type": t, "id": i} for t, i in parents],
    }
    with admin_client() as client:
        stored = client.post("/admin/v1/resources", body)
    if json_output:
        emit_json(stored)
        return
    verb = "added" if stored.get("created_at") == stored.get("updated_at") else "updated"
    line(f"{ref(stored['type'], stored['id'])}: {verb}")


@app.command("list")
def list_resources(
    type_: Annotated[
        str | None, typer.Option("--type", metavar="TYPE", help="Only this entity type.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List registered resources and groups."""
    params = {"type": type_} if type_ is not None else None
    with admin_client() as client:
        result = client.get("/admin/v1/resources", params=params)
    if json_output:
        emit_json(result)
        return
    resources = result.get("resources", [])
    rows = [
        [
            ref(str(r.get("type")), str(r.get("id"))),
            {k: json.dumps(v) if not isinstance(v, str) else v for k, v in r.get("attributes", {}).items()},
            parents_of(r),
            r.get("updated_at"),
        ]
        for r in resources
    ]
    table(f"{len(resources)} resource(s)", COLUMNS, rows)


@app.command("remove")
def remove(
    entity: Annotated[str, typer.Argument(metavar="TYPE::ID", help="The resource to remove.")],
    json_output: JsonFlag = False,
) -> None:
    """Remove a registered resource; decisions stop seeing it within a second."""
    type_, id_ = parse_ref(entity, DEFAULT_TYPE, "resource")
    with admin_client() as client:
        result = client.delete(f"/admin/v1/resources/{quote(type_, safe='')}/{quote(id_, safe='')}")
    if json_output:
        emit_json(result)
    else:
        line(f"{ref(type_, id_)}: removed")
