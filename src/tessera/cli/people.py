"""``tessera user …`` (accounts, admin only) and ``tessera login|logout|whoami`` (personal tokens)."""

from __future__ import annotations

import sys
from typing import Annotated
from urllib.parse import quote

import httpx
import typer

from tessera.cli.client import (
    TIMEOUT,
    CliError,
    admin_client,
    json_body,
    person_token_path,
    response_error,
    server_url,
    transport_error,
)
from tessera.cli.output import JsonFlag, emit_json, fields, line, note, table
from tessera.identity.admin_credentials import write_secret_file

app = typer.Typer(help="Accounts for people: admins, approvers and auditors.", no_args_is_help=True)
USER_FIELDS = ("username", "role", "groups", "totp_enrolled", "disabled", "created_at", "id")


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\n")
        if not value:
            raise CliError("no password on stdin")
        return value
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=confirm))


def _enrolment(view: dict[str, object], json_output: bool) -> None:
    if json_output:
        emit_json(view)
        return
    fields(view, USER_FIELDS)
    if view.get("otpauth_uri"):
        note("add this to an authenticator app now; it is not shown again:")
        line(str(view["otpauth_uri"]))


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="The login name (an email address works well).")],
    *,
    role: Annotated[str, typer.Option("--role", help="admin, approver or auditor.")],
    group: Annotated[
        list[str] | None, typer.Option("--group", help="An approver group (repeatable).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Create an account; admins and approvers get a TOTP secret (shown once)."""
    password = _password(password_stdin, confirm=True)
    with admin_client() as client:
        view = client.post(
            "/admin/v1/users",
            {"username": username, "role": role, "password": password, "groups": group or []},
        )
    _enrolment(view, json_output)


@app.command("list")
def list_users(json_output: JsonFlag = False) -> None:
    """List accounts."""
    with admin_client() as client:
        result = client.get("/admin/v1/users")
    if json_output:
        emit_json(result)
        return
    users = result.get("users", [])
    table(f"{len(users)} user(s)", USER_FIELDS[:-1], [[u.get(c) for c in USER_FIELDS[:-1]] for u in users])


@app.command("disable")
def disable(username: str, json_output: JsonFlag = False) -> None:
    """Disable an account and revoke its personal tokens."""
    with admin_client() as client:
        view = client.post(f"/admin/v1/users/{quote(username, safe='')}/disable")
    if json_output:
        emit_json(view)
    else:
        line(f"{username}: disabled")


@app.command("reset-totp")
def reset_totp(username: str, json_output: JsonFlag = False) -> None:
    """Give an account a new TOTP secret (shown once) and revoke its personal tokens."""
    with admin_client() as client:
        view = client.post(f"/admin/v1/users/{quote(username, safe='')}/reset-totp")
    _enrolment(view, json_output)


def login(
    username: Annotated[str, typer.Argument(help="Your login name.")],
    *,
    totp: Annotated[str | None, typer.Option("--totp", help="The code from your authenticator app.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Log in; the personal token is stored in $TESSERA_HOME/person-token (mode 0600) and used
    by later commands (TESSERA_TOKEN and TESSERA_ADMIN_TOKEN, when set, still win)."""
    password = _password(password_stdin, confirm=False)
    body: dict[str, str] = {"username": username, "password": password}
    if totp:
        body["totp"] = totp
    url = server_url()
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
            response = http.post(f"{url}/auth/v1/login", json=body)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(exc, url) from None
    if not response.is_success:
        raise response_error(response)
    result = json_body(response)
    write_secret_file(person_token_path(), str(result["token"]))
    if json_output:
        emit_json({k: v for k, v in result.items() if k != "token"})
    else:
        line(f"logged in as {result['username']} ({result['role']}); token stored in {person_token_path()}")


def logout() -> None:
    """Revoke the stored personal token and forget it."""
    path = person_token_path()
    if not path.is_file():
        raise CliError(f"not logged in ('{path}' does not exist)")
    with admin_client() as client:
        client.post("/auth/v1/logout")
    path.unlink()
    line("logged out")


def whoami(json_output: JsonFlag = False) -> None:
    """Who the stored personal token belongs to."""
    with admin_client() as client:
        view = client.get("/auth/v1/whoami")
    if json_output:
        emit_json(view)
    else:
        fields(view, USER_FIELDS)
