"""The admin API (``/admin/v1``): agents, their keys and lifecycle, signing keys, revocation.

Every route requires the admin credential as a Bearer token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from tessera.errors import Unauthorized, ValidationFailed
from tessera.identity.agents import LifecycleState, Transition
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tessera.server.oauth import bearer_token, runtime_of
from tessera.server.schemas import (
    AgentCreate,
    KeyAdd,
    KeyRotate,
    Reason,
    TokenRevoke,
    agent_view,
    epoch,
    iso,
    key_view,
)


def require_admin(request: Request) -> Runtime:
    runtime = runtime_of(request)
    if not runtime.admin.verify(bearer_token(request)):
        raise Unauthorized(
            "admin credential required (Authorization: Bearer <admin token>)",
            headers={"WWW-Authenticate": 'Bearer realm="tessera-admin"'},
        )
    return runtime


Admin = Annotated[Runtime, Depends(require_admin)]
router = APIRouter(prefix="/admin/v1")


@router.post("/agents", status_code=201)
def create_agent(body: AgentCreate, runtime: Admin) -> dict[str, Any]:
    agent = runtime.agents.create(
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
        )
    )
    return agent_view(agent)


@router.get("/agents")
def list_agents(
    runtime: Admin,
    owner: Annotated[str | None, Query(max_length=320)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    lifecycle: LifecycleState | None = None
    if state is not None:
        try:
            lifecycle = LifecycleState(state)
        except ValueError as exc:
            raise ValidationFailed(f"unknown state '{state}'") from exc
    return {"agents": [agent_view(a) for a in runtime.agents.list(owner=owner, state=lifecycle)]}


@router.get("/agents/{agent_id}")
def show_agent(agent_id: str, runtime: Admin) -> dict[str, Any]:
    return agent_view(runtime.agents.get(agent_id))


def _transition(
    runtime: Runtime, agent_id: str, transition: Transition, body: Reason | None
) -> dict[str, Any]:
    result = runtime.agents.transition(agent_id, transition, body.reason if body else None)
    view = agent_view(result.agent)
    view["revoked_tokens"] = result.revoked_tokens
    return view


@router.post("/agents/{agent_id}/suspend")
def suspend_agent(agent_id: str, runtime: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(runtime, agent_id, Transition.SUSPEND, body)


@router.post("/agents/{agent_id}/resume")
def resume_agent(agent_id: str, runtime: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(runtime, agent_id, Transition.RESUME, body)


@router.post("/agents/{agent_id}/quarantine")
def quarantine_agent(agent_id: str, runtime: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(runtime, agent_id, Transition.QUARANTINE, body)


@router.post("/agents/{agent_id}/release")
def release_agent(agent_id: str, runtime: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(runtime, agent_id, Transition.RELEASE, body)


@router.post("/agents/{agent_id}/decommission")
def decommission_agent(agent_id: str, runtime: Admin, body: Reason | None = None) -> dict[str, Any]:
    return _transition(runtime, agent_id, Transition.DECOMMISSION, body)


@router.post("/agents/{agent_id}/keys", status_code=201)
def add_agent_key(agent_id: str, body: KeyAdd, runtime: Admin) -> dict[str, Any]:
    return key_view(runtime.agents.add_key(agent_id, body.jwk, epoch(body.expires_at)))


@router.delete("/agents/{agent_id}/keys/{kid}")
def remove_agent_key(agent_id: str, kid: str, runtime: Admin) -> dict[str, Any]:
    runtime.agents.remove_key(agent_id, kid)
    return {"agent_id": agent_id, "kid": kid, "removed": True}


@router.post("/agents/{agent_id}/secret", status_code=201)
def set_agent_secret(agent_id: str, runtime: Admin) -> dict[str, Any]:
    return {"client_id": agent_id, "client_secret": runtime.agents.set_client_secret(agent_id)}


@router.get("/keys")
def list_signing_keys(runtime: Admin) -> dict[str, Any]:
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
def rotate_signing_key(runtime: Admin, body: KeyRotate | None = None) -> dict[str, Any]:
    kid = runtime.keys.rotate(immediate=bool(body and body.immediate))
    runtime.reload_keys()
    key = next(k for k in runtime.keyring().keys if k.kid == kid)
    return {"kid": kid, "activates_at": iso(key.activates_at)}


@router.post("/keys/{kid}/retire")
def retire_signing_key(kid: str, runtime: Admin) -> dict[str, Any]:
    runtime.keys.retire(kid)
    runtime.reload_keys()
    return {"kid": kid, "retired": True}


@router.post("/tokens/revoke")
def revoke_tokens(body: TokenRevoke, runtime: Admin) -> dict[str, Any]:
    selectors = [s for s in (body.jti, body.agent_id, body.task_id) if s]
    if len(selectors) != 1:
        raise ValidationFailed("give exactly one of jti, agent_id or task_id")
    revoked = runtime.revoker.revoke(
        reason=body.reason, jti=body.jti, agent_id=body.agent_id, task_id=body.task_id
    )
    return {"revoked": len(revoked), "jtis": sorted(revoked)}
