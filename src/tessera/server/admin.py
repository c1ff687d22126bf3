"""The admin API (``/admin/v1``): agents, their keys and lifecycle, signing keys, revocation.

Every route requires, as a Bearer token, the bootstrap admin credential or the
personal token of a person whose role the route admits (``admin`` here; see
:func:`require_roles` for approver and auditor routes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import ADMIN, RequestContext, event
from tessera.errors import Forbidden, TesseraError, Unauthorized, ValidationFailed
from tessera.identity.agents import LifecycleState, Transition
from tessera.identity.people import TOKEN_PREFIX as PERSONAL_TOKEN_PREFIX
from tessera.identity.people import Person
from tessera.identity.service import AgentUpdate, NewAgent
from tessera.runtime import Runtime
from tessera.server.errors import error_response
from tessera.server.oauth import bearer_token, runtime_of
from tessera.server.schemas import (
    AgentCreate,
    AgentPatch,
    KeyAdd,
    KeyRotate,
    Reason,
    TokenRevoke,
    agent_view,
    epoch,
    iso,
    key_view,
)


@dataclass(frozen=True, slots=True)
class AdminCall:
    """An authenticated admin request: the runtime, and who/where for the audit record.

    ``person`` is the account whose personal token was presented (``None`` for the
    bootstrap admin credential)."""

    runtime: Runtime
    context: RequestContext
    person: Person | None = None


def _refuse(runtime: Runtime, ip: str | None, route: str, actor: Actor, error: TesseraError) -> TesseraError:
    runtime.auditor.record_async(
        event("admin.denied", RequestContext(actor=actor, ip=ip), data={"route": route, "error": error.error})
    )
    return error


def authenticate_staff(
    request: Request, roles: frozenset[str], *, admin_credential: bool = True
) -> AdminCall:
    """The bootstrap admin credential (if ``admin_credential``) or a personal token whose
    person holds one of ``roles``; reads are recorded here, changes by the services."""
    runtime = runtime_of(request)
    ip = request.client.host if request.client else None
    route = f"{request.method} {request.url.path}"[:200]
    token = bearer_token(request)
    if admin_credential and runtime.admin.verify(token):
        context = RequestContext(actor=ADMIN, ip=ip)
        person = None
    else:
        person = runtime.people.verify_token(token)
        if person is None:
            raise _refuse(
                runtime,
                ip,
                route,
                Actor(ActorType.ADMIN, None),
                Unauthorized(
                    "admin credential required (Authorization: Bearer <admin or personal token>)",
                    headers={"WWW-Authenticate": 'Bearer realm="tessera-admin"'},
                ),
            )
        if person.role not in roles:
            needed = " or ".join(sorted(roles))
            raise _refuse(
                runtime,
                ip,
                route,
                person.actor,
                Forbidden(f"role '{person.role}' may not call '{route}'; it needs {needed}"),
            )
        context = RequestContext(actor=person.actor, ip=ip)
    if request.method == "GET":
        runtime.auditor.record_async(event("admin.read", context, data={"route": route}))
    return AdminCall(runtime, context, person)


def require_admin(request: Request) -> AdminCall:
    """Every admin route: the admin credential, or a person with role ``admin``; audited."""
    return authenticate_staff(request, ADMIN_ROLES)


def require_roles(*roles: str, admin_credential: bool = True) -> Callable[[Request], AdminCall]:
    """A dependency admitting people with one of ``roles`` (and the admin credential, unless not)."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> AdminCall:
        return authenticate_staff(request, allowed, admin_credential=admin_credential)

    return dependency


ADMIN_ROLES = frozenset({"admin"})
Admin = Annotated[AdminCall, Depends(require_admin)]
#: Audit reads: admins and auditors.
AuditReader = Annotated[AdminCall, Depends(require_roles("admin", "auditor"))]


class AdminGate:
    """Checks the credential on ``/admin/`` paths before any body is read or parsed, so an
    unauthenticated caller learns nothing about what the route would accept. Personal
    tokens pass here; each route then checks the person's role."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/admin/"):
            authorization = next(
                (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), ""
            )
            token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
            known = self.runtime.admin.verify(token) or (
                token is not None
                and token.startswith(PERSONAL_TOKEN_PREFIX)
                and await run_in_threadpool(self.runtime.people.verify_token, token) is not None
            )
            if not known:
                # The route never runs, so the refusal is recorded here.
                response = error_response(
                    Unauthorized(
                        "admin credential required (Authorization: Bearer <admin or personal token>)",
                        headers={"WWW-Authenticate": 'Bearer realm="tessera-admin"'},
                    )
                )
                client = scope.get("client")
                self.runtime.auditor.record_async(
                    event(
                        "admin.denied",
                        RequestContext(actor=Actor(ActorType.ADMIN, None), ip=client[0] if client else None),
                        data={"route": f"{scope.get('method')} {scope.get('path')}"[:200]},
                    )
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


router = APIRouter(prefix="/admin/v1")


@router.post("/agents", status_code=201)
def create_agent(body: AgentCreate, call: Admin) -> dict[str, Any]:
    agent = call.runtime.agents.create(
        NewAgent(
            name=body.name,
            owner=body.owner,
            description=body.description,
            attributes=body.attributes,
            segment=body.segment,
            labels=tuple(body.labels),
            scopes=tuple(body.scopes),
            resource_uris=tuple(body.resource_uris),
            max_ttl=body.max_ttl,
            require_dpop=body.require_dpop,
            expires_at=epoch(body.expires_at),
            jwks=tuple(body.jwks),
        ),
        call.context,
    )
    return agent_view(agent)


@router.get("/agents")
def list_agents(
    call: Admin,
    owner: Annotated[str | None, Query(max_length=320)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    lifecycle: LifecycleState | None = None
    if state is not None:
        try:
            lifecycle = LifecycleState(state)
        except ValueError as exc:
            raise ValidationFailed(f"unknown state '{state}'") from exc
    return {"agents": [agent_view(a) for a in call.runtime.agents.list(owner=owner, state=lifecycle)]}


@router.get("/agents/{agent_id}")
def show_agent(agent_id: str, call: Admin) -> dict[str, Any]:
    return agent_view(call.runtime.agents.get(agent_id))


@router.patch("/agents/{agent_id}")
def update_agent(agent_id: str, body: AgentPatch, call: Admin) -> dict[str, Any]:
    change = AgentUpdate(
        name=body.name,
        description=body.description,
        attributes=body.attributes,
        segment=body.segment,
        labels=tuple(body.labels) if body.labels is not None else None,
        scopes=tuple(body.scopes) if body.scopes is not None else None,
        resource_uris=tuple(body.resource_uris) if body.resource_uris is not None else None,
        max_ttl=body.max_ttl,
        require_dpop=body.require_dpop,
        expires_at=epoch(body.expires_at),
    )
    return agent_view(call.runtime.agents.update(agent_id, change, call.context))


def _transition(
    call: AdminCall, agent_id: str, transition: Transition, body: Reason | None
) -> dict[str, Any]:
    reason = body.reason if body else None
    result = call.runtime.agents.transition(agent_id, transition, reason, call.context)
    view = agent_view(result.agent)
    view["revoked_tokens"] = result.revoked_tokens
    return view


@router.post("/agents/{agent_id}/suspend")
def suspend_agent(agent_id: str, call: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(call, agent_id, Transition.SUSPEND, body)


@router.post("/agents/{agent_id}/resume")
def resume_agent(agent_id: str, call: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(call, agent_id, Transition.RESUME, body)


@router.post("/agents/{agent_id}/quarantine")
def quarantine_agent(agent_id: str, call: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(call, agent_id, Transition.QUARANTINE, body)


@router.post("/agents/{agent_id}/release")
def release_agent(agent_id: str, call: Admin, body: Reason | None = None) -> dict[str, Any]:
    """Only a person releases a quarantine, and says why (docs/continuous-verification.md)."""
    call.runtime.agents.get(agent_id)
    if body is None or not (body.reason or "").strip():
        raise ValidationFailed(f"releasing agent '{agent_id}' needs a reason")
    return _transition(call, agent_id, Transition.RELEASE, body)


@router.post("/agents/{agent_id}/decommission")
def decommission_agent(agent_id: str, call: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(call, agent_id, Transition.DECOMMISSION, body)


@router.post("/agents/{agent_id}/keys", status_code=201)
def add_agent_key(agent_id: str, body: KeyAdd, call: Admin) -> dict[str, Any]:
    return key_view(call.runtime.agents.add_key(agent_id, body.jwk, epoch(body.expires_at), call.context))


@router.delete("/agents/{agent_id}/keys/{kid}")
def remove_agent_key(agent_id: str, kid: str, call: Admin) -> dict[str, Any]:
    call.runtime.agents.remove_key(agent_id, kid, call.context)
    return {"agent_id": agent_id, "kid": kid, "removed": True}


@router.post("/agents/{agent_id}/secret", status_code=201)
def set_agent_secret(agent_id: str, call: Admin) -> dict[str, Any]:
    return {
        "client_id": agent_id,
        "client_secret": call.runtime.agents.set_client_secret(agent_id, call.context),
    }


@router.get("/keys")
def list_signing_keys(call: Admin) -> dict[str, Any]:
    runtime = call.runtime
    now = runtime.clock.now()
    ring = runtime.keyring()
    return {
        "keys": [
            {
                "kid": key.kid,
                "alg": key.alg,
                "state": ring.state(key, now),
                "created_at": iso(key.created_at),
                "activates_at": iso(key.activates_at),
                "deactivated_at": iso(key.deactivated_at),
                "retired_at": iso(key.retired_at),
            }
            for key in ring.keys
        ]
    }


@router.post("/keys/rotate", status_code=201)
def rotate_signing_key(call: Admin, body: KeyRotate | None = None) -> dict[str, Any]:
    runtime = call.runtime
    kid = runtime.keys.rotate(immediate=bool(body and body.immediate), context=call.context)
    runtime.reload_keys()
    key = next(k for k in runtime.keyring().keys if k.kid == kid)
    return {"kid": kid, "activates_at": iso(key.activates_at)}


@router.post("/keys/{kid}/retire")
def retire_signing_key(kid: str, call: Admin) -> dict[str, Any]:
    call.runtime.keys.retire(kid, call.context)
    call.runtime.reload_keys()
    return {"kid": kid, "retired": True}


@router.post("/tokens/revoke")
def revoke_tokens(body: TokenRevoke, call: Admin) -> dict[str, Any]:
    selectors = [s for s in (body.jti, body.agent_id, body.task_id) if s]
    if len(selectors) != 1:
        raise ValidationFailed("give exactly one of jti, agent_id or task_id")
    revoked = call.runtime.revoker.revoke(
        reason=body.reason, jti=body.jti, agent_id=body.agent_id, task_id=body.task_id, context=call.context
    )
    return {"revoked": len(revoked), "jtis": sorted(revoked)}
