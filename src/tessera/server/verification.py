"""Continuous verification's admin API: risk scores and the kill switch.

- ``GET /admin/v1/agents/{id}/risk``: the agent's score, reasons and learning state;
- ``POST /admin/v1/kill`` ``{"agent"|"task"|"delegator"|"owner": target, "reason"}``;
- ``GET /admin/v1/kill`` (``?all=true`` includes released rules);
- ``DELETE /admin/v1/kill/{id}`` ``{"reason"}``: release a rule.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from tessera.detect.risk import RiskView
from tessera.errors import ValidationFailed
from tessera.response.kill_switch import SCOPES, KillRule
from tessera.server.admin import Admin
from tessera.server.schemas import Strict, iso

router = APIRouter(prefix="/admin/v1")


class KillRequest(Strict):
    agent: str | None = Field(default=None, max_length=320)
    task: str | None = Field(default=None, max_length=320)
    delegator: str | None = Field(default=None, max_length=320)
    owner: str | None = Field(default=None, max_length=320)
    reason: str = Field(min_length=1, max_length=500)


class ReleaseRequest(Strict):
    reason: str = Field(min_length=1, max_length=500)


def risk_view(view: RiskView) -> dict[str, Any]:
    return {
        "agent_id": view.agent_id,
        "score": view.score,
        "reasons": [
            {"detector": r.detector, "points": round(weight, 1), "detail": r.detail, "at": iso(r.at)}
            for r, weight in view.reasons
        ],
        "learning": view.learning,
        "updated_at": iso(view.updated_at) if view.updated_at else None,
    }


def kill_view(rule: KillRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "scope": rule.scope,
        "target": rule.target,
        "reason": rule.reason,
        "revoked_tokens": rule.revoked_tokens,
        "created_at": iso(rule.created_at),
        "released_at": iso(rule.released_at),
        "released_reason": rule.released_reason,
    }


@router.get("/agents/{agent_id}/risk")
def agent_risk(agent_id: str, call: Admin) -> dict[str, Any]:
    runtime = call.runtime
    runtime.agents.get(agent_id)  # 404 for an unknown agent
    return risk_view(runtime.risk.view(agent_id, runtime.clock.now()))


@router.post("/kill", status_code=201)
def create_kill(body: KillRequest, call: Admin) -> dict[str, Any]:
    chosen = [(scope, getattr(body, scope)) for scope in SCOPES if getattr(body, scope) is not None]
    if len(chosen) != 1:
        raise ValidationFailed("give exactly one of agent, task, delegator or owner")
    scope, target = chosen[0]
    rule = call.runtime.kill_switch.kill(scope, target, body.reason, call.context)
    return kill_view(rule)


@router.get("/kill")
def list_kills(call: Admin, all: Annotated[bool, Query()] = False) -> dict[str, Any]:
    return {"kills": [kill_view(r) for r in call.runtime.kill_switch.list(include_released=all)]}


@router.delete("/kill/{rule_id}")
def release_kill(rule_id: str, body: ReleaseRequest, call: Admin) -> dict[str, Any]:
    return kill_view(call.runtime.kill_switch.release(rule_id, body.reason, call.context))
