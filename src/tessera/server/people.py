"""People: logging in for a personal API token (``/auth/v1``) and managing accounts
(``/admin/v1/users``, admin only). See docs/people.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from tessera.errors import Unauthorized
from tessera.identity.people import MAX_PASSWORD
from tessera.server.access import with_times
from tessera.server.admin import Admin, AdminCall, require_roles
from tessera.server.oauth import bearer_token, runtime_of
from tessera.server.schemas import Strict

auth = APIRouter(prefix="/auth/v1")
router = APIRouter(prefix="/admin/v1/users")
Anyone = Annotated[AdminCall, Depends(require_roles("admin", "approver", "auditor", admin_credential=False))]


class Login(Strict):
    username: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    totp: str | None = Field(default=None, max_length=16)


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=320)
    role: str = Field(min_length=1, max_length=20)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    groups: list[str] = Field(default_factory=list, max_length=32)


@auth.post("/login")
async def login(body: Login, request: Request) -> dict[str, Any]:
    """Password and (for admin and approver) a TOTP code → a personal token, shown once."""
    runtime = runtime_of(request)
    ip = request.client.host if request.client else None
    issued = await run_in_threadpool(runtime.people.login, body.username, body.password, body.totp, ip)
    return {
        "token": issued.token,
        "token_type": "Bearer",
        "token_id": issued.id,
        "expires_at": with_times({"expires_at": issued.expires_at})["expires_at"],
        "username": issued.person.username,
        "role": issued.person.role,
    }


@auth.post("/logout")
def logout(call: Anyone, request: Request) -> dict[str, Any]:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("personal token required")
    return {"revoked": call.runtime.people.logout(token, call.context)}


@auth.get("/whoami")
def whoami(call: Anyone) -> dict[str, Any]:
    return with_times(call.person.view()) if call.person else {}


@router.post("", status_code=201)
def create_user(body: UserCreate, call: Admin) -> dict[str, Any]:
    enrolment = call.runtime.people.create(
        body.username, body.role, body.password, tuple(body.groups), call.context
    )
    view = with_times(enrolment.person.view())
    view["otpauth_uri"] = enrolment.otpauth_uri
    return dict(view)


@router.get("")
def list_users(call: Admin) -> dict[str, Any]:
    return with_times({"users": [p.view() for p in call.runtime.people.list()]})


@router.get("/{username}")
def show_user(username: str, call: Admin) -> dict[str, Any]:
    return with_times(call.runtime.people.get(username).view())


@router.post("/{username}/disable")
def disable_user(username: str, call: Admin) -> dict[str, Any]:
    return with_times(call.runtime.people.disable(username, call.context).view())


@router.post("/{username}/reset-totp")
def reset_totp(username: str, call: Admin) -> dict[str, Any]:
    enrolment = call.runtime.people.reset_totp(username, call.context)
    view = with_times(enrolment.person.view())
    view["otpauth_uri"] = enrolment.otpauth_uri
    return dict(view)
