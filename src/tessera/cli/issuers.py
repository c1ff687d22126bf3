"""``tessera issuer …``: trusted issuers for identity federation (``/admin/v1/issuers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tessera.cli.client import CliError, admin_client, read_json_file
from tessera.cli.output import JsonFlag, emit_json, fields, line, table

app = typer.Typer(
    help="Trust external issuers (Kubernetes, CI OIDC, SPIFFE, another Tessera) for federation.",
    no_args_is_help=True,
)

LIST_COLUMNS = ("id", "issuer", "keys", "subject", "region", "audiences")
SHOW_FIELDS = (
    "id",
    "issuer",
    "jwks_url",
    "jwks",
    "audiences",
    "required_claims",
    "attributes",
    "subject",
    "subject_claim",
    "algorithms",
    "max_token_lifetime",
    "region",
    "allow_private_network",
    "jti_policy",
    "description",
    "created_at",
    "updated_at",
)


def _pairs(values: list[str], option: str, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest:
            raise CliError(f"malformed {option} '{value}': expected {what}")
        if key.strip() in result:
            raise CliError(f"{option} '{key.strip()}' is given twice")
        result[key.strip()] = rest
    return result


def _required_claims(values: list[str]) -> list[dict[str, Any]]:
    """``PATH=VALUE``: the claim must equal VALUE (a string); ``PATH`` alone: it must be present."""
    rules: list[dict[str, Any]] = []
    for value in values:
        path, sep, expected = value.partition("=")
        if not path.strip():
            raise CliError(f"malformed --require '{value}': expected PATH or PATH=VALUE")
        rules.append({"claim": path.strip(), "equals": expected} if sep else {"claim": path.strip()})
    return rules


def _subject(  # noqa: PLR0917 - one value per command-line option
    agent: str | None,
    subject_map_claim: str | None,
    subject_map: list[str],
    ephemeral: bool,
    owner: str | None,
    scopes: list[str],
    segment: str | None,
    max_ttl: int | None,
    require_dpop: bool,
) -> dict[str, Any]:
    chosen = sum([agent is not None, subject_map_claim is not None, ephemeral])
    if chosen != 1:
        raise CliError("give exactly one of --agent, --subject-map-claim or --ephemeral")
    if agent is not None:
        return {"type": "agent", "agent_id": agent}
    if subject_map_claim is not None:
        if not subject_map:
            raise CliError("--subject-map-claim needs at least one --subject-map VALUE=AGENT_ID")
        return {
            "type": "claim",
            "claim": subject_map_claim,
            "agents": _pairs(subject_map, "--subject-map", "VALUE=AGENT_ID"),
        }
    if owner is None:
        raise CliError("--ephemeral needs --owner EMAIL (who answers for these identities)")
    subject: dict[str, Any] = {
        "type": "ephemeral",
        "owner": owner,
        "scopes": scopes,
        "require_dpop": require_dpop,
    }
    if segment is not None:
        subject["segment"] = segment
    if max_ttl is not None:
        subject["max_ttl"] = max_ttl
    return subject


@app.command("add")
def add(
    issuer: Annotated[str | None, typer.Argument(help="The exact 'iss' of the tokens to trust.")] = None,
    *,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--file", metavar="FILE", help="The whole registration as JSON (see docs/federation.md)."
        ),
    ] = None,
    jwks_url: Annotated[str | None, typer.Option("--jwks-url", help="Where the issuer's JWK set is.")] = None,
    jwks_file: Annotated[
        Path | None, typer.Option("--jwks-file", metavar="FILE", help="A static JWK set (JSON file).")
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option(
            "--audience", help="An accepted 'aud' (repeatable; default: this server's issuer and token url)."
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            metavar="PATH[=VALUE]",
            help="A claim that must be present or equal VALUE (repeatable).",
        ),
    ] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option("--map", metavar="ATTR=PATH", help="Map a claim to an attribute (repeatable)."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Every subject acts as this agent.")] = None,
    subject_map_claim: Annotated[
        str | None,
        typer.Option("--subject-map-claim", metavar="PATH", help="The claim that picks the agent."),
    ] = None,
    subject_map: Annotated[
        list[str] | None,
        typer.Option(
            "--subject-map", metavar="VALUE=AGENT_ID", help="A claim value and its agent (repeatable)."
        ),
    ] = None,
    ephemeral: Annotated[
        bool, typer.Option("--ephemeral", help="Give each external subject its own short-lived identity.")
    ] = False,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Owner of ephemeral identities (email).")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope ephemeral identities may get (repeatable).")
    ] = None,
    segment: Annotated[str | None, typer.Option("--segment", help="Segment of ephemeral identities.")] = None,
    max_ttl: Annotated[
        int | None, typer.Option("--max-ttl", help="Longest local token for ephemeral identities (seconds).")
    ] = None,
    require_dpop: Annotated[
        bool, typer.Option("--require-dpop", help="Ephemeral identities get only DPoP-bound tokens.")
    ] = False,
    subject_claim: Annotated[
        str | None,
        typer.Option("--subject-claim", metavar="PATH", help="The external subject (default sub)."),
    ] = None,
    alg: Annotated[
        list[str] | None,
        typer.Option("--alg", help="An accepted alg (repeatable; default ES256 RS256 EdDSA)."),
    ] = None,
    max_lifetime: Annotated[
        int | None,
        typer.Option("--max-lifetime", help="Longest accepted token lifetime, exp - iat (seconds)."),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Region or jurisdiction, for policy.")
    ] = None,
    allow_private_network: Annotated[
        bool,
        typer.Option(
            "--allow-private-network", help="Allow a JWKS on private or loopback addresses (and http)."
        ),
    ] = False,
    jti_policy: Annotated[
        str | None, typer.Option("--jti-policy", help="optional (default), required or ignored.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Trust an issuer: its tokens can be traded for local ones (jwt-bearer, token exchange)."""
    if spec_file is not None:
        spec = read_json_file(spec_file, "issuer file")
        if not isinstance(spec, dict):
            raise CliError(f"issuer file '{spec_file}' must hold a json object")
        if issuer is not None:
            spec["issuer"] = issuer
    else:
        if issuer is None:
            raise CliError("give the issuer, or --file")
        spec = {
            "issuer": issuer,
            "audiences": audience or [],
            "required_claims": _required_claims(require or []),
            "attributes": _pairs(attribute or [], "--map", "ATTR=PATH"),
            "subject": _subject(
                agent,
                subject_map_claim,
                subject_map or [],
                ephemeral,
                owner,
                scope or [],
                segment,
                max_ttl,
                require_dpop,
            ),
            "allow_private_network": allow_private_network,
        }
        if (jwks_url is None) == (jwks_file is None):
            raise CliError("give exactly one of --jwks-url and --jwks-file")
        if jwks_url is not None:
            spec["jwks_url"] = jwks_url
        else:
            assert jwks_file is not None  # noqa: S101 - checked above
            spec["jwks"] = read_json_file(jwks_file, "jwks file")
        optional = {
            "subject_claim": subject_claim,
            "algorithms": alg,
            "max_token_lifetime": max_lifetime,
            "region": region,
            "jti_policy": jti_policy,
            "description": description,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
    with admin_client() as client:
        stored = client.post("/admin/v1/issuers", spec)
    if json_output:
        emit_json(stored)
        return
    line(f"{stored['id']}: trusting '{stored['issuer']}'")


def _row(issuer: dict[str, Any]) -> list[Any]:
    keys = issuer.get("jwks_url") or f"static ({len((issuer.get('jwks') or {}).get('keys', []))} keys)"
    subject = issuer.get("subject") or {}
    kind = subject.get("type")
    shown = subject.get("agent_id") if kind == "agent" else kind
    return [
        issuer.get("id"),
        issuer.get("issuer"),
        keys,
        shown,
        issuer.get("region"),
        issuer.get("audiences"),
    ]


@app.command("list")
def list_issuers(json_output: JsonFlag = False) -> None:
    """List trusted issuers."""
    with admin_client() as client:
        result = client.get("/admin/v1/issuers")
    if json_output:
        emit_json(result)
        return
    issuers = result.get("issuers", [])
    table(f"{len(issuers)} trusted issuer(s)", LIST_COLUMNS, [_row(i) for i in issuers])


@app.command("show")
def show(
    issuer_id: Annotated[str, typer.Argument(help="The issuer's id (iss_…).")], json_output: JsonFlag = False
) -> None:
    """Show one trusted issuer's registration."""
    with admin_client() as client:
        result = client.get(f"/admin/v1/issuers/{quote(issuer_id, safe='')}")
    if json_output:
        emit_json(result)
    else:
        fields(result, SHOW_FIELDS)


@app.command("remove")
def remove(
    issuer_id: Annotated[str, typer.Argument(help="The issuer's id (iss_…).")], json_output: JsonFlag = False
) -> None:
    """Stop trusting an issuer; every replica stops within a second. Issued tokens live out their minutes."""
    with admin_client() as client:
        result = client.delete(f"/admin/v1/issuers/{quote(issuer_id, safe='')}")
    if json_output:
        emit_json(result)
    else:
        line(f"{issuer_id}: removed")
