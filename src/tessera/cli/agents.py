"""``tessera agent …``: register agents, manage their keys and lifecycle (``/admin/v1/agents``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.client import CliError, admin_client
from tessera.cli.keyfiles import new_key_file, read_one_public_jwk, read_public_jwks
from tessera.cli.output import JsonFlag, emit_json, fields, line, note, table, text

app = typer.Typer(help="Register agents; manage their keys and lifecycle.", no_args_is_help=True)


class KeyType(StrEnum):
    ES256 = "ES256"
    Ed25519 = "Ed25519"


AgentId = Annotated[str, typer.Argument(metavar="ID", help="The agent's id (its client_id).")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", metavar="TEXT", help="Why; kept in the agent's record.")
]
JwkOption = Annotated[
    Path | None,
    typer.Option("--jwk", metavar="FILE", help="A JWK or JWK Set file; only public parts are sent."),
]
GenerateKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--generate-key",
        metavar="PATH",
        help="Write a new private JWK to PATH (mode 0600), register its public half.",
    ),
]
KeyTypeOption = Annotated[
    KeyType | None, typer.Option("--key-type", help="Type of key for --generate-key (default ES256).")
]
ExpiresOption = Annotated[str | None, typer.Option("--expires-at", metavar="RFC3339", help="Expiry time.")]

AGENT_COLUMNS = ("id", "name", "owner", "state", "segment", "scopes", "keys", "created_at")
AGENT_FIELDS = (
    "id", "name", "owner", "description", "state", "state_reason", "segment", "labels", "attributes",
    "scopes", "resource_uris", "max_ttl", "require_dpop", "has_client_secret",
    "created_at", "updated_at", "expires_at",
)  # fmt: skip


def agent_path(agent_id: str, *rest: str) -> str:
    parts = [quote(agent_id, safe=""), *(quote(part, safe="") for part in rest)]
    return "/admin/v1/agents/" + "/".join(parts)


def parse_attributes(pairs: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"malformed --attr '{pair}': expected KEY=VALUE")
        key = key.strip()
        if key in attributes:
            raise CliError(f"--attr '{key}' is given twice")
        attributes[key] = value
    return attributes


def one_key_source(
    jwk: Path | None, generate_key: Path | None, key_type: KeyType | None, *, required: bool = False
) -> None:
    if required and jwk is None and generate_key is None:
        raise CliError("give --jwk FILE or --generate-key PATH")
    if jwk is not None and generate_key is not None:
        raise CliError("give --jwk FILE or --generate-key PATH, not both")
    if key_type is not None and generate_key is None:
        raise CliError("--key-type applies only with --generate-key")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A name for the agent.")],
    *,
    owner: Annotated[str, typer.Option("--owner", metavar="EMAIL", help="The person who sponsors it.")],
    attr: Annotated[
        list[str] | None, typer.Option("--attr", metavar="KEY=VALUE", help="An attribute (repeatable).")
    ] = None,
    segment: Annotated[str | None, typer.Option("--segment", metavar="S", help="Micro-segment.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", metavar="L", help="A label (repeatable).")
    ] = None,
    description: Annotated[str, typer.Option("--description", metavar="D", help="What the agent does.")] = "",
    jwk: JwkOption = None,
    generate_key: GenerateKeyOption = None,
    key_type: KeyTypeOption = None,
    scopes: Annotated[
        str | None, typer.Option("--scopes", metavar='"A B"', help="Scopes it may request.")
    ] = None,
    resource_uri: Annotated[
        list[str] | None, typer.Option("--resource-uri", metavar="URI", help="Allowed resource (repeatable).")
    ] = None,
    max_ttl: Annotated[
        int | None, typer.Option("--max-ttl", metavar="SECONDS", help="Longest token lifetime.")
    ] = None,
    require_dpop: Annotated[bool, typer.Option("--require-dpop", help="Refuse tokens without DPoP.")] = False,
    expires_at: ExpiresOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Register an agent; prints its id."""
    one_key_source(jwk, generate_key, key_type)
    body: dict[str, Any] = {
        "name": name,
        "owner": owner,
        "description": description,
        "attributes": parse_attributes(attr or []),
        "segment": segment,
        "labels": list(label or []),
        "scopes": (scopes or "").split(),
        "resource_uris": list(resource_uri or []),
        "max_ttl": max_ttl,
        "require_dpop": require_dpop,
        "expires_at": expires_at,
        "jwks": read_public_jwks(jwk) if jwk is not None else [],
    }
    with admin_client() as client:
        if generate_key is not None:
            with new_key_file(generate_key, key_type or KeyType.ES256) as public:
                agent = client.post("/admin/v1/agents", {**body, "jwks": [public]})
            note(f"private key written to {generate_key} (mode 0600); keep it secret")
        else:
            agent = client.post("/admin/v1/agents", body)
    if json_output:
        emit_json(agent)
    else:
        line(str(agent["id"]))


@app.command("list")
def list_agents(
    owner: Annotated[str | None, typer.Option("--owner", metavar="EMAIL", help="Only this owner's.")] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", metavar="STATE", help="active, suspended, quarantined or decommissioned."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List agents."""
    params = {name: value for name, value in (("owner", owner), ("state", state)) if value is not None}
    with admin_client() as client:
        result = client.get("/admin/v1/agents", params=params)
    if json_output:
        emit_json(result)
        return
    agents = result.get("agents", [])
    rows = [
        [
            *(agent.get(column) for column in AGENT_COLUMNS[:6]),
            sum(1 for key in agent.get("keys", []) if not key.get("removed_at")),
            agent.get("created_at"),
        ]
        for agent in agents
    ]
    table(f"{len(agents)} agent(s)", AGENT_COLUMNS, rows)


def print_keys(keys: list[dict[str, Any]]) -> None:
    rows = [
        [k.get("kid"), k.get("alg"), k.get("created_at"), k.get("expires_at"), k.get("removed_at")]
        for k in keys
    ]
    table("keys", ("kid", "alg", "created_at", "expires_at", "removed_at"), rows)


@app.command("show")
def show(agent_id: AgentId, json_output: JsonFlag = False) -> None:
    """Show one agent and its keys."""
    with admin_client() as client:
        agent = client.get(agent_path(agent_id))
    if json_output:
        emit_json(agent)
        return
    fields(agent, AGENT_FIELDS)
    print_keys(agent.get("keys", []))


def update_body(options: dict[str, Any], attr: list[str] | None, clear: dict[str, bool]) -> dict[str, Any]:
    """The PATCH body: only what was given; ``--clear-*`` sends an empty map or list."""
    body = {name: value for name, value in options.items() if value is not None}
    if attr:
        body["attributes"] = parse_attributes(attr)
    for name, empty in (("attributes", {}), ("labels", []), ("resource_uris", [])):
        if clear[name]:
            if body.get(name):
                raise CliError(f"--clear-{name.replace('_', '-')} contradicts the values given")
            body[name] = empty
    if not body:
        raise CliError("nothing to update: give at least one option (see 'tessera agent update --help')")
    return body


@app.command("update")
def update(
    agent_id: AgentId,
    *,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="A new name.")] = None,
    description: Annotated[
        str | None, typer.Option("--description", metavar="D", help="What the agent does.")
    ] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", metavar="KEY=VALUE", help="Attribute (repeatable); replaces the whole map."),
    ] = None,
    clear_attributes: Annotated[
        bool, typer.Option("--clear-attributes", help="Remove every attribute.")
    ] = False,
    segment: Annotated[str | None, typer.Option("--segment", metavar="S", help="Micro-segment.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", metavar="L", help="Label (repeatable); replaces them all.")
    ] = None,
    clear_labels: Annotated[bool, typer.Option("--clear-labels", help="Remove every label.")] = False,
    scopes: Annotated[
        str | None, typer.Option("--scopes", metavar='"A B"', help="Scopes it may request (replaces them).")
    ] = None,
    resource_uri: Annotated[
        list[str] | None,
        typer.Option("--resource-uri", metavar="URI", help="Resource URI (repeatable); replaces them all."),
    ] = None,
    clear_resource_uris: Annotated[
        bool, typer.Option("--clear-resource-uris", help="Remove every resource URI.")
    ] = False,
    max_ttl: Annotated[
        int | None, typer.Option("--max-ttl", metavar="SECONDS", help="Longest token lifetime.")
    ] = None,
    require_dpop: Annotated[
        bool | None, typer.Option("--require-dpop/--no-require-dpop", help="Refuse tokens without DPoP.")
    ] = None,
    expires_at: ExpiresOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Change an agent's registration; only the options given change. Live tokens keep what they carry."""
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "segment": segment,
        "labels": list(label) if label else None,
        "scopes": scopes.split() if scopes is not None else None,
        "resource_uris": list(resource_uri) if resource_uri else None,
        "max_ttl": max_ttl,
        "require_dpop": require_dpop,
        "expires_at": expires_at,
    }
    clear = {
        "attributes": clear_attributes,
        "labels": clear_labels,
        "resource_uris": clear_resource_uris,
    }
    body = update_body(options, attr, clear)
    with admin_client() as client:
        agent = client.request("PATCH", agent_path(agent_id), json=body)
    if json_output:
        emit_json(agent)
    else:
        line(f"{agent['id']}: updated {', '.join(sorted(body))}")


def transition(action: str, agent_id: str, reason: str | None, json_output: bool) -> None:
    with admin_client() as client:
        agent = client.post(agent_path(agent_id, action), {"reason": reason} if reason is not None else None)
    if json_output:
        emit_json(agent)
        return
    revoked = agent.get("revoked_tokens") or 0
    suffix = f" ({revoked} live token(s) revoked)" if revoked else ""
    line(f"{agent['id']}: {agent['state']}{suffix}")


@app.command("suspend")
def suspend(agent_id: AgentId, reason: ReasonOption = None, json_output: JsonFlag = False) -> None:
    """Suspend an agent; its live tokens stop working at once."""
    transition("suspend", agent_id, reason, json_output)


@app.command("resume")
def resume(agent_id: AgentId, json_output: JsonFlag = False) -> None:
    """Resume a suspended agent."""
    transition("resume", agent_id, None, json_output)


@app.command("quarantine")
def quarantine(agent_id: AgentId, reason: ReasonOption = None, json_output: JsonFlag = False) -> None:
    """Quarantine an agent; its live tokens stop working at once."""
    transition("quarantine", agent_id, reason, json_output)


@app.command("release")
def release(
    agent_id: AgentId,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (required); kept in the record.")
    ],
    json_output: JsonFlag = False,
) -> None:
    """Release an agent from quarantine (a person's decision: a reason is required)."""
    transition("release", agent_id, reason, json_output)


@app.command("risk")
def risk(agent_id: AgentId, json_output: JsonFlag = False) -> None:
    """Show an agent's risk score and the reasons behind it."""
    with admin_client() as client:
        view = client.get(agent_path(agent_id, "risk"))
    if json_output:
        emit_json(view)
        return
    learning = " (learning)" if view.get("learning") else ""
    line(f"{view['agent_id']}: risk {view['score']}{learning}")
    reasons = view.get("reasons", [])
    if reasons:
        rows = [[r.get("detector"), r.get("points"), r.get("detail"), r.get("at")] for r in reasons]
        table("reasons", ("detector", "points", "detail", "at"), rows)


@app.command("decommission")
def decommission(agent_id: AgentId, reason: ReasonOption = None, json_output: JsonFlag = False) -> None:
    """Decommission an agent for good; the record and its history stay."""
    transition("decommission", agent_id, reason, json_output)


@app.command("add-key")
def add_key(
    agent_id: AgentId,
    *,
    jwk: JwkOption = None,
    generate_key: GenerateKeyOption = None,
    key_type: KeyTypeOption = None,
    expires_at: ExpiresOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Add a public key to an agent (to rotate with overlap); prints its kid."""
    one_key_source(jwk, generate_key, key_type, required=True)
    with admin_client() as client:
        if generate_key is not None:
            with new_key_file(generate_key, key_type or KeyType.ES256) as public:
                key = client.post(agent_path(agent_id, "keys"), {"jwk": public, "expires_at": expires_at})
            note(f"private key written to {generate_key} (mode 0600); keep it secret")
        elif jwk is not None:
            body = {"jwk": read_one_public_jwk(jwk), "expires_at": expires_at}
            key = client.post(agent_path(agent_id, "keys"), body)
        else:  # unreachable: one_key_source requires one of them
            raise CliError("give --jwk FILE or --generate-key PATH")
    if json_output:
        emit_json(key)
    else:
        line(str(key["kid"]))


@app.command("remove-key")
def remove_key(
    agent_id: AgentId,
    kid: Annotated[str, typer.Argument(metavar="KID", help="The key id to remove.")],
    json_output: JsonFlag = False,
) -> None:
    """Remove one of an agent's keys."""
    with admin_client() as client:
        result = client.delete(agent_path(agent_id, "keys", kid))
    if json_output:
        emit_json(result)
    else:
        line(f"{agent_id}: removed key {text(result.get('kid', kid))}")


@app.command("secret")
def secret(agent_id: AgentId, json_output: JsonFlag = False) -> None:
    """Set a legacy client_secret (if the server allows it); prints it once."""
    with admin_client() as client:
        result = client.post(agent_path(agent_id, "secret"))
    if json_output:
        emit_json(result)
        return
    line(str(result["client_secret"]))
    note("the client secret is shown only this once; only its hash is stored")
