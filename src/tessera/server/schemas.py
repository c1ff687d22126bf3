"""Admin API bodies and their JSON views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tessera.identity.agents import Agent, AgentKey


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=3, max_length=320)
    description: str = Field(default="", max_length=2000)
    attributes: dict[str, str] = Field(default_factory=dict)
    segment: str | None = None
    labels: list[str] = Field(default_factory=list, max_length=32)
    scopes: list[str] = Field(default_factory=list, max_length=64)
    resource_uris: list[str] = Field(default_factory=list, max_length=16)
    max_ttl: int | None = Field(default=None, ge=10, le=86400)
    require_dpop: bool = False
    expires_at: datetime | None = None
    jwks: list[dict[str, Any]] = Field(default_factory=list, max_length=10)


class AgentPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    attributes: dict[str, str] | None = None
    segment: str | None = Field(default=None, max_length=128)
    labels: list[str] | None = Field(default=None, max_length=32)
    scopes: list[str] | None = Field(default=None, max_length=64)
    resource_uris: list[str] | None = Field(default=None, max_length=16)
    max_ttl: int | None = Field(default=None, ge=10, le=86400)
    require_dpop: bool | None = None
    expires_at: datetime | None = None


class KeyAdd(Strict):
    jwk: dict[str, Any]
    expires_at: datetime | None = None


class Reason(Strict):
    reason: str | None = Field(default=None, max_length=500)


class TokenRevoke(Strict):
    jti: str | None = Field(default=None, max_length=128)
    agent_id: str | None = Field(default=None, max_length=64)
    task_id: str | None = Field(default=None, max_length=128)
    reason: str = Field(default="revoked by admin", max_length=500)


class KeyRotate(Strict):
    immediate: bool = False


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def key_view(key: AgentKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "alg": key.alg,
        "jwk": key.jwk,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "removed_at": iso(key.removed_at),
    }


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "client_id": agent.id,
        "name": agent.name,
        "owner": agent.owner,
        "description": agent.description,
        "attributes": agent.attributes,
        "segment": agent.segment,
        "labels": list(agent.labels),
        "scopes": list(agent.scopes),
        "resource_uris": list(agent.resource_uris),
        "max_ttl": agent.max_ttl,
        "require_dpop": agent.require_dpop,
        "state": agent.state.value,
        "state_reason": agent.state_reason,
        "created_at": iso(agent.created_at),
        "updated_at": iso(agent.updated_at),
        "expires_at": iso(agent.expires_at),
        "has_client_secret": agent.secret_hash is not None,
        "keys": [key_view(k) for k in agent.keys],
    }
