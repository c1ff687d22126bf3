"""``tessera token …``: fetch a token as an agent would, revoke tokens, introspect one."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from tessera.cli.client import CliError, admin_client, server_url, transport_error
from tessera.cli.keyfiles import read_private_jwk
from tessera.cli.output import JsonFlag, emit_json, fields, line
from tessera.sdk.agent import AgentClient, TokenError

app = typer.Typer(help="Get, revoke and introspect access tokens.", no_args_is_help=True)


def task_details(
    task: str | None, purpose: str | None, resources: list[str], actions: list[str]
) -> dict[str, Any] | None:
    """The ``agent_task`` authorization details (RFC 9396) for ``--task``, or None."""
    if task is None:
        if purpose is not None or resources or actions:
            raise CliError("--purpose, --task-resource and --task-action need --task")
        return None
    if not purpose:
        raise CliError("--task needs --purpose")
    details: dict[str, Any] = {"task_id": task, "purpose": purpose}
    if resources:
        details["resources"] = resources
    if actions:
        details["actions"] = actions
    return details


@app.command("get")
def get(
    *,
    agent: Annotated[str, typer.Option("--agent", metavar="ID", help="The agent's id.")],
    key: Annotated[Path, typer.Option("--key", metavar="PATH", help="The agent's private JWK.")],
    scope: Annotated[str | None, typer.Option("--scope", metavar='"A B"', help="Scopes to request.")] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", metavar="URI", help="Audience (repeatable).")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", metavar="TASK_ID", help="Bind to a task.")] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", metavar="TEXT", help="The task's purpose.")
    ] = None,
    task_resource: Annotated[
        list[str] | None, typer.Option("--task-resource", metavar="R", help="Task resource (repeatable).")
    ] = None,
    task_action: Annotated[
        list[str] | None, typer.Option("--task-action", metavar="A", help="Task action (repeatable).")
    ] = None,
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", metavar="SECONDS", help="Ask for a shorter life.")
    ] = None,
    no_dpop: Annotated[
        bool, typer.Option("--no-dpop", help="Ask for a bearer token, not DPoP-bound.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Get an access token as the agent (private_key_jwt, DPoP by default); prints it."""
    details = task_details(task, purpose, list(task_resource or []), list(task_action or []))
    private = read_private_jwk(key)
    url = server_url()
    try:
        client = AgentClient(url, agent, private, dpop=not no_dpop)
    except ValueError as exc:
        raise CliError(f"cannot use key file '{key}': {exc}") from None
    try:
        token = client.fetch_token(
            scope=scope, resources=list(resource or []), task=details, expires_in=expires_in
        )
    except TokenError as exc:
        raise CliError(f"{exc.error}: {exc.description}" if exc.description else exc.error) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(exc, url) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"unexpected response from {url}: {type(exc).__name__}") from None
    finally:
        client.close()
    if json_output:
        emit_json(dataclasses.asdict(token))
    else:
        line(token.access_token)


TOKEN_TYPES = {
    "access_token": "urn:ietf:params:oauth:token-type:access_token",
    "jwt": "urn:ietf:params:oauth:token-type:jwt",
    "id_token": "urn:ietf:params:oauth:token-type:id_token",
}


@app.command("exchange")
def exchange(
    *,
    agent: Annotated[str, typer.Option("--agent", metavar="ID", help="The acting agent's id.")],
    key: Annotated[Path, typer.Option("--key", metavar="PATH", help="The acting agent's private JWK.")],
    subject_token: Annotated[
        str,
        typer.Option("--subject-token", metavar="TOKEN", help="The token to act for, or - to read stdin."),
    ],
    subject_token_type: Annotated[
        str,
        typer.Option("--subject-token-type", metavar="TYPE", help="access_token (default), jwt or id_token."),
    ] = "access_token",  # noqa: S107 -- a token type name, not a secret
    scope: Annotated[str | None, typer.Option("--scope", metavar='"A B"', help="Narrower scopes.")] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", metavar="URI", help="Narrower audience (repeatable).")
    ] = None,
    audience: Annotated[
        list[str] | None, typer.Option("--audience", metavar="NAME", help="Narrower audience (repeatable).")
    ] = None,
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", metavar="SECONDS", help="Ask for a shorter life.")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", metavar="TASK_ID", help="Bind to a task.")] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", metavar="TEXT", help="The task's purpose.")
    ] = None,
    no_dpop: Annotated[bool, typer.Option("--no-dpop", help="Ask for a bearer token.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Exchange a subject token for one of this agent's, acting for its subject (RFC 8693)."""
    details = task_details(task, purpose or (task and "delegated task"), [], [])
    if subject_token == "-":
        subject_token = sys.stdin.read().strip()
    if not subject_token:
        raise CliError("no subject token given")
    if subject_token_type not in TOKEN_TYPES:
        raise CliError(f"unknown --subject-token-type '{subject_token_type}': access_token, jwt or id_token")
    client = _agent_client(agent, key, dpop=not no_dpop)
    url = client.server_url
    try:
        token = client.exchange_token(
            subject_token,
            subject_token_type=TOKEN_TYPES[subject_token_type],
            scope=scope,
            resources=list(resource or []),
            audiences=list(audience or []),
            task=details,
            expires_in=expires_in,
        )
    except TokenError as exc:
        raise CliError(f"{exc.error}: {exc.description}" if exc.description else exc.error) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(exc, url) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"unexpected response from {url}: {type(exc).__name__}") from None
    finally:
        client.close()
    if json_output:
        emit_json(dataclasses.asdict(token))
    else:
        line(token.access_token)


def _agent_client(agent: str, key: Path, *, dpop: bool) -> AgentClient:
    private = read_private_jwk(key)
    try:
        return AgentClient(server_url(), agent, private, dpop=dpop)
    except ValueError as exc:
        raise CliError(f"cannot use key file '{key}': {exc}") from None


@app.command("revoke")
def revoke(
    jti: Annotated[str | None, typer.Option("--jti", metavar="JTI", help="One token, by its jti.")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", metavar="ID", help="All of an agent's tokens.")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", metavar="TASK_ID", help="All tokens of a task.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why; kept in the record.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Revoke live tokens: one (--jti), an agent's (--agent) or a task's (--task)."""
    selectors = {"jti": jti, "agent_id": agent, "task_id": task}
    chosen = {name: value for name, value in selectors.items() if value is not None}
    if len(chosen) != 1:
        raise CliError("give exactly one of --jti, --agent or --task")
    body: dict[str, Any] = dict(chosen)
    if reason is not None:
        body["reason"] = reason
    with admin_client() as client:
        result = client.post("/admin/v1/tokens/revoke", body)
    if json_output:
        emit_json(result)
    else:
        line(f"revoked {result.get('revoked', 0)} token(s)")


@app.command("introspect")
def introspect(
    token: Annotated[str, typer.Argument(metavar="TOKEN", help="The access token, or - to read stdin.")],
    json_output: JsonFlag = False,
) -> None:
    """Ask the server whether a token is active, and what it carries (RFC 7662)."""
    if token == "-":
        token = sys.stdin.read().strip()
    if not token:
        raise CliError("no token given")
    with admin_client() as client:
        result = client.request("POST", "/oauth2/introspect", data={"token": token})
    if json_output:
        emit_json(result)
        return
    fields(result, list(result) or ["active"])
