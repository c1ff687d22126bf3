"""Continuous verification's admin API: risk scores, the kill switch, playbooks and SET receivers.

- ``GET /admin/v1/agents/{id}/risk``: the agent's score, reasons and learning state;
- ``POST /admin/v1/kill`` ``{"agent"|"task"|"delegator"|"owner": target, "reason"}``;
- ``GET /admin/v1/kill`` (``?all=true`` includes released rules);
- ``DELETE /admin/v1/kill/{id}`` ``{"reason"}``: release a rule;
- ``GET /admin/v1/playbooks``, ``PUT /admin/v1/playbooks`` ``{"yaml"}``,
  ``POST /admin/v1/playbooks/validate`` ``{"yaml"}``;
- ``POST /admin/v1/receivers`` ``{"url", "description"}``, ``GET``, ``DELETE /{id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from tessera.detect.risk import RiskView
from tessera.errors import ValidationFailed
from tessera.response.kill_switch import SCOPES, KillRule
from tessera.response.playbooks import MAX_YAML_BYTES, Playbook, parse_yaml
from tessera.response.receivers import Receiver
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


# --- playbooks ---------------------------------------------------------------------------


class PlaybookDocument(Strict):
    yaml: str = Field(min_length=1, max_length=MAX_YAML_BYTES)


def playbooks_view(runtime_source: str, books: list[Playbook]) -> dict[str, Any]:
    return {"source": runtime_source, "playbooks": [b.to_json() for b in books]}


@router.get("/playbooks")
def list_playbooks(call: Admin) -> dict[str, Any]:
    runner = call.runtime.playbooks
    return playbooks_view(runner.source, runner.playbooks)


@router.post("/playbooks/validate")
def validate_playbooks(body: PlaybookDocument, call: Admin) -> dict[str, Any]:
    books = parse_yaml(body.yaml)
    return {"valid": True, **playbooks_view("validated", books)}


@router.put("/playbooks")
def apply_playbooks(body: PlaybookDocument, call: Admin) -> dict[str, Any]:
    books = parse_yaml(body.yaml)
    call.runtime.playbooks.apply(books, call.context, note="applied through the admin api")
    runner = call.runtime.playbooks
    return playbooks_view(runner.source, runner.playbooks)


# --- security event receivers (RFC 8935 push) ----------------------------------------------


class ReceiverAdd(Strict):
    url: str = Field(min_length=1, max_length=2000)
    description: str = Field(default="", max_length=500)


def receiver_view(receiver: Receiver) -> dict[str, Any]:
    return {
        "id": receiver.id,
        "url": receiver.url,
        "description": receiver.description,
        "created_at": iso(receiver.created_at),
    }


@router.post("/receivers", status_code=201)
def add_receiver(body: ReceiverAdd, call: Admin) -> dict[str, Any]:
    return receiver_view(call.runtime.receivers.add(body.url, body.description, call.context))


@router.get("/receivers")
def list_receivers(call: Admin) -> dict[str, Any]:
    receivers = call.runtime.receivers
    return {
        "receivers": [receiver_view(r) for r in receivers.registered()],
        "configured": receivers.configured,
    }


@router.delete("/receivers/{receiver_id}")
def remove_receiver(receiver_id: str, call: Admin) -> dict[str, Any]:
    call.runtime.receivers.remove(receiver_id, call.context)
    return {"id": receiver_id, "removed": True}
