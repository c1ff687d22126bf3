"""Just-in-time access over HTTP.

- ``POST /access/v1/requests``: an agent (its access token with scope
  ``access:request``) asks for one action on one resource; the answer is a CIBA
  acknowledgement (OpenID CIBA Core 1.0 §7.3) to redeem at the token endpoint.
- ``/admin/v1/approvals``: approvers list, show, approve and deny (auditors and
  admins may read).
- ``/admin/v1/access/grants`` and ``/admin/v1/access/break-glass``: grants, their
  revocation, emergency access and its review.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from tessera.access.flows import request_summary
from tessera.access.grants import GrantKind
from tessera.access.requests import Status
from tessera.errors import InvalidRequest, UnauthorizedClient, ValidationFailed
from tessera.policy.authzen import AuthZenService, TokenRejected
from tessera.policy.authzen_requests import load_request, parse_evaluation
from tessera.server.admin import Admin, AdminCall, require_roles
from tessera.server.api_auth import ApiCaller, token_caller
from tessera.server.errors import NO_STORE
from tessera.server.oauth import runtime_of
from tessera.server.schemas import Strict, iso
from tessera.tokens.grants.client_credentials import requested_audience

SCOPE = "access:request"
JSON = "application/json"
Agent = Annotated[ApiCaller, Depends(token_caller(SCOPE))]
Reader = Annotated[AdminCall, Depends(require_roles("admin", "approver", "auditor"))]
Approver = Annotated[AdminCall, Depends(require_roles("approver", admin_credential=False))]
Auditors = Annotated[AdminCall, Depends(require_roles("admin", "auditor"))]

agents = APIRouter(prefix="/access/v1")
router = APIRouter(prefix="/admin/v1")
_REQUEST_FIELDS = {
    "action",
    "resource",
    "context",
    "task_id",
    "purpose",
    "duration",
    "audience",
    "client_notification_token",
}


class Approve(Strict):
    asked_hash: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    reason: str | None = Field(default=None, max_length=500)


class Deny(Strict):
    reason: str = Field(min_length=1, max_length=500)


class Revoke(Strict):
    reason: str = Field(min_length=1, max_length=500)


class BreakGlass(Strict):
    agent_id: str = Field(min_length=1, max_length=64)
    justification: str = Field(min_length=1, max_length=2000)
    duration: int = Field(ge=1, le=86400)


class Review(Strict):
    note: str = Field(min_length=1, max_length=2000)


TIME_FIELDS = frozenset(
    {"created_at", "expires_at", "decided_at", "escalate_at", "revoked_at", "reviewed_at", "at"}
)


def with_times(view: dict[str, Any]) -> dict[str, Any]:
    """The view with its epoch times as RFC 3339 UTC, like the rest of the admin API."""
    converted: dict[str, Any] = _times(view)
    return converted


def _times(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: iso(v) if k in TIME_FIELDS and isinstance(v, int | float) else with_times(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [with_times(v) for v in value]
    return value


def _string(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise InvalidRequest(f"'{name}' must be a string of at most {limit} characters")
    return value


@agents.post("/requests")
async def ask(request: Request, caller: Agent) -> JSONResponse:
    """Ask for access: ``{action, resource, context, purpose, task_id?, duration?, audience?}``."""
    runtime = runtime_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != JSON:
        raise InvalidRequest(f"content-type must be {JSON}")
    body = load_request(await request.body())
    unknown = sorted(set(body) - _REQUEST_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field '{unknown[0][:40]}'")
    if caller.token is None:
        raise UnauthorizedClient("an agent's access token is required")
    agent = await run_in_threadpool(runtime.agents.find, caller.token.client_id)
    if agent is None or not agent.is_usable_at(runtime.clock.now()):
        raise UnauthorizedClient(f"agent '{caller.token.client_id}' is not active")
    duration = body.get("duration")
    if duration is not None and (not isinstance(duration, int) or isinstance(duration, bool) or duration < 1):
        raise InvalidRequest("'duration' must be a positive number of seconds")
    audience = body.get("audience", [])
    if not isinstance(audience, list) or not all(isinstance(a, str) for a in audience):
        raise InvalidRequest("'audience' must be an array of uris")
    evaluation = parse_evaluation(
        {
            "subject": {"type": "Agent", "id": agent.id},
            "action": body.get("action"),
            "resource": body.get("resource"),
            "context": body.get("context", {}),
        }
    )
    try:
        question = AuthZenService(runtime.decisions, runtime.entities).question(evaluation)
    except TokenRejected as exc:
        raise InvalidRequest("context.access_token is not accepted here") from exc
    purpose = _string(body, "purpose", 500)
    if not purpose:
        raise InvalidRequest("'purpose' is required: say why the access is needed")
    task_id = _string(body, "task_id", 128) or caller.token.task_id
    opened = await run_in_threadpool(
        lambda: runtime.action_requests.ask(
            agent,
            question,
            task_id=task_id,
            purpose=purpose,
            duration=duration,
            audience=requested_audience(tuple(audience), runtime.issuer) if audience else (),
            callback_token=_string(body, "client_notification_token", 1024),
            context=caller.context,
        )
    )
    return JSONResponse(opened.response(runtime.clock.now()), headers=NO_STORE)


# --- approvers ----------------------------------------------------------------------------


@router.get("/approvals")
def list_approvals(
    call: Reader,
    status: Annotated[str | None, Query(max_length=16)] = "pending",
    agent: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    wanted: Status | None = None
    if status and status != "all":
        try:
            wanted = Status(status)
        except ValueError as exc:
            raise ValidationFailed(f"unknown status '{status}'") from exc
    found = call.runtime.access.list(status=wanted, agent_id=agent, limit=limit)
    return with_times({"requests": [request_summary(r) for r in found]})


@router.get("/approvals/{request_id}")
def show_approval(request_id: str, call: Reader) -> dict[str, Any]:
    return with_times(call.runtime.access.show(request_id))


@router.post("/approvals/{request_id}/approve")
def approve(request_id: str, body: Approve, call: Approver) -> dict[str, Any]:
    if call.person is None:  # the dependency admits people only; never the bootstrap credential
        raise UnauthorizedClient("approvals need a person")
    return call.runtime.access.vote(
        request_id,
        call.person,
        approve=True,
        reason=body.reason,
        shown_hash=body.asked_hash,
        context=call.context,
    ).view()


@router.post("/approvals/{request_id}/deny")
def deny(request_id: str, body: Deny, call: Approver) -> dict[str, Any]:
    if call.person is None:
        raise UnauthorizedClient("approvals need a person")
    return with_times(
        call.runtime.access.vote(
            request_id, call.person, approve=False, reason=body.reason, shown_hash=None, context=call.context
        ).view()
    )


# --- grants and break-glass -----------------------------------------------------------------


@router.get("/access/grants")
def list_grants(
    call: Auditors,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    active: bool = False,
) -> dict[str, Any]:
    try:
        wanted = GrantKind(kind) if kind else None
    except ValueError as exc:
        raise ValidationFailed(f"unknown grant kind '{kind}'") from exc
    now = call.runtime.clock.now()
    found = call.runtime.grants.list(agent_id=agent, kind=wanted, active_only=active)
    return with_times({"grants": [g.view(now) for g in found]})


@router.post("/access/grants/{grant_id}/revoke")
def revoke_grant(grant_id: str, body: Revoke, call: Admin) -> dict[str, Any]:
    return with_times(
        call.runtime.grants.revoke(grant_id, body.reason, call.context).view(call.runtime.clock.now())
    )


@router.post("/access/break-glass", status_code=201)
def break_glass(body: BreakGlass, call: Admin) -> dict[str, Any]:
    runtime = call.runtime
    runtime.agents.get(body.agent_id)  # 404 for an unknown agent
    grant = runtime.grants.grant_break_glass(body.agent_id, body.justification, body.duration, call.context)
    return with_times(grant.view(runtime.clock.now()))


@router.get("/access/break-glass")
def list_break_glass(call: Auditors) -> dict[str, Any]:
    runtime = call.runtime
    now = runtime.clock.now()
    views = []
    for grant in runtime.grants.list(kind=GrantKind.BREAK_GLASS):
        view = grant.view(now)
        view["uses"] = len(runtime.grants.uses(grant.id))
        views.append(view)
    return with_times({"grants": views})


@router.get("/access/break-glass/{grant_id}")
def show_break_glass(grant_id: str, call: Auditors) -> dict[str, Any]:
    runtime = call.runtime
    view = runtime.grants.get(grant_id).view(runtime.clock.now())
    view["uses"] = [
        {"ts_ms": r.ts_ms, "actor": r.actor.get("id"), "data": r.data} for r in runtime.grants.uses(grant_id)
    ]
    return with_times(view)


@router.post("/access/break-glass/{grant_id}/review")
def review_break_glass(grant_id: str, body: Review, call: Auditors) -> dict[str, Any]:
    return with_times(
        call.runtime.grants.review(grant_id, body.note, call.context).view(call.runtime.clock.now())
    )
