"""Agent registry operations: register, change lifecycle, manage keys.

Each operation commits the agent change, the tokens it revokes and the change-feed
entry in one transaction, then updates this worker's in-memory state; other
workers follow through the feed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine

from tessera.audit.service import Auditor, RequestContext, event, record_revocations
from tessera.clock import Clock
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.events.change_feed import publish
from tessera.identity.agents import (
    REVOKING_TRANSITIONS,
    Agent,
    AgentKey,
    LifecycleState,
    Transition,
    next_state,
    validate_attributes,
    validate_labels,
    validate_name,
    validate_owner,
    validate_resource_uri,
    validate_scopes,
    validate_segment,
)
from tessera.identity.keys import normalise_public_jwk
from tessera.identity.repository import AgentRepository
from tessera.ids import IdGenerator
from tessera.storage.database import reading, writing
from tessera.tokens.revocation import AGENT_CHANGED, RevocationState, agent_change_payload, revoke_tokens

MAX_KEYS = 10
_SYSTEM = RequestContext()
_PAST = {
    Transition.SUSPEND: "suspended",
    Transition.RESUME: "resumed",
    Transition.QUARANTINE: "quarantined",
    Transition.RELEASE: "released",
    Transition.DECOMMISSION: "decommissioned",
}


@dataclass(frozen=True, slots=True)
class NewAgent:
    name: str
    owner: str
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    segment: str | None = None
    labels: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    resource_uris: tuple[str, ...] = ()
    max_ttl: int | None = None
    require_dpop: bool = False
    expires_at: float | None = None
    jwks: tuple[dict[str, Any], ...] = ()
    key_expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class AgentUpdate:
    """Fields to change; ``None`` leaves a field as it is. ``attributes`` replaces the whole map."""

    name: str | None = None
    description: str | None = None
    attributes: dict[str, str] | None = None
    segment: str | None = None
    labels: tuple[str, ...] | None = None
    scopes: tuple[str, ...] | None = None
    resource_uris: tuple[str, ...] | None = None
    max_ttl: int | None = None
    require_dpop: bool | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class TransitionResult:
    agent: Agent
    revoked_tokens: int


class AgentService:
    def __init__(
        self,
        engine: Engine,
        repository: AgentRepository,
        clock: Clock,
        ids: IdGenerator,
        revocation: RevocationState,
        *,
        default_max_ttl: int,
        ttl_cap: int,
        allow_client_secret: bool,
        auditor: Auditor | None = None,
        listeners: list[Callable[[Agent], None]] | None = None,
    ) -> None:
        self._engine = engine
        self._repo = repository
        self._clock = clock
        self._ids = ids
        self._revocation = revocation
        self._default_max_ttl = default_max_ttl
        self._ttl_cap = ttl_cap
        self._allow_client_secret = allow_client_secret
        self._hasher = PasswordHasher()
        self._auditor = auditor
        self._listeners = list(listeners or [])

    def add_listener(self, listener: Callable[[Agent], None]) -> None:
        """Called with the agent after each committed change, in this worker."""
        self._listeners.append(listener)

    def _notify(self, agent: Agent) -> None:
        for listener in self._listeners:
            listener(agent)

    def _audit(
        self, conn: Connection, type_: str, context: RequestContext, agent_id: str, **data: Any
    ) -> None:
        if self._auditor is not None:
            self._auditor.record_in(conn, event(type_, context, subject=agent_id, data=data))

    # --- reads ---------------------------------------------------------------------------

    def get(self, agent_id: str) -> Agent:
        with reading(self._engine) as conn:
            agent = self._repo.get(conn, agent_id)
        if agent is None:
            raise NotFound(f"no agent '{agent_id[:80]}'")
        return agent

    def find(self, agent_id: str) -> Agent | None:
        with reading(self._engine) as conn:
            return self._repo.get(conn, agent_id)

    def list(self, *, owner: str | None = None, state: LifecycleState | None = None) -> list[Agent]:
        with reading(self._engine) as conn:
            return self._repo.list(conn, owner=owner, state=state)

    # --- writes --------------------------------------------------------------------------

    def create(self, spec: NewAgent, context: RequestContext = _SYSTEM) -> Agent:
        now = self._clock.now()
        max_ttl = spec.max_ttl if spec.max_ttl is not None else self._default_max_ttl
        if not 10 <= max_ttl <= self._ttl_cap:
            raise ValidationFailed(f"max_ttl {max_ttl} must be between 10 and {self._ttl_cap} seconds")
        if spec.expires_at is not None and spec.expires_at <= now:
            raise ValidationFailed("expires_at is in the past")
        if len(spec.jwks) > MAX_KEYS:
            raise ValidationFailed(f"at most {MAX_KEYS} keys per agent")
        keys = tuple(self._new_key(jwk, now, spec.key_expires_at) for jwk in spec.jwks)
        if len({k.kid for k in keys}) != len(keys):
            raise ValidationFailed("two keys share one kid")
        agent = Agent(
            id=self._ids.new("agt"),
            name=validate_name(spec.name),
            owner=validate_owner(spec.owner),
            description=spec.description[:2000],
            attributes=validate_attributes(spec.attributes),
            segment=validate_segment(spec.segment),
            labels=validate_labels(spec.labels),
            scopes=validate_scopes(spec.scopes),
            resource_uris=tuple(validate_resource_uri(u) for u in spec.resource_uris),
            max_ttl=max_ttl,
            require_dpop=spec.require_dpop,
            state=LifecycleState.ACTIVE,
            created_at=now,
            updated_at=now,
            expires_at=spec.expires_at,
            keys=keys,
        )
        with writing(self._engine) as conn:
            self._repo.add(conn, agent)
            publish(conn, AGENT_CHANGED, agent.id, agent_change_payload(agent), now)
            self._audit(
                conn,
                "agent.created",
                context,
                agent.id,
                name=agent.name,
                owner=agent.owner,
                scopes=list(agent.scopes),
                segment=agent.segment,
                kids=[k.kid for k in keys],
            )
        self._revocation.set_agent(agent.id, agent.state, agent.expires_at)
        self._notify(agent)
        return agent

    def transition(
        self,
        agent_id: str,
        transition: Transition,
        reason: str | None = None,
        context: RequestContext = _SYSTEM,
    ) -> TransitionResult:
        now = self._clock.now()
        with writing(self._engine) as conn:
            agent = self._require(conn, agent_id)
            state = next_state(agent.state, transition, agent_id)
            self._repo.set_state(conn, agent_id, state, reason, now)
            updated = replace(agent, state=state, state_reason=reason, updated_at=now)
            revoked: dict[str, float] = {}
            if transition in REVOKING_TRANSITIONS:
                revoked = revoke_tokens(conn, now=now, reason=f"agent {transition.value}", agent_id=agent_id)
            publish(conn, AGENT_CHANGED, agent_id, agent_change_payload(updated), now)
            self._audit(
                conn,
                f"agent.{_PAST[transition]}",
                replace(context, reason=reason or context.reason),
                agent_id,
                previous_state=agent.state.value,
                state=state.value,
                revoked_tokens=len(revoked),
            )
            if self._auditor is not None:
                record_revocations(
                    self._auditor,
                    conn,
                    context,
                    revoked,
                    agent_id=agent_id,
                    reason=f"agent {transition.value}",
                )
        self._revocation.set_agent(agent_id, state, updated.expires_at)
        self._revocation.mark_revoked(revoked)
        self._notify(updated)
        return TransitionResult(updated, len(revoked))

    def update(self, agent_id: str, change: AgentUpdate, context: RequestContext = _SYSTEM) -> Agent:
        """Change registration fields. Live tokens keep what they were issued with (minutes at most)."""
        now = self._clock.now()
        fields = self._update_fields(change, now)
        if not fields:
            raise ValidationFailed("nothing to update")
        with writing(self._engine) as conn:
            agent = self._require(conn, agent_id)
            self._require_not_decommissioned(agent)
            self._repo.update(conn, agent_id, fields, now)
            updated = replace(agent, updated_at=now, **fields)  # type: ignore[arg-type]
            publish(conn, AGENT_CHANGED, agent_id, agent_change_payload(updated), now)
            self._audit(conn, "agent.updated", context, agent_id, fields=sorted(fields))
        self._revocation.set_agent(agent_id, updated.state, updated.expires_at)
        self._notify(updated)
        return updated

    def _update_fields(self, change: AgentUpdate, now: float) -> dict[str, object]:
        def ttl(value: int) -> int:
            if not 10 <= value <= self._ttl_cap:
                raise ValidationFailed(f"max_ttl {value} must be between 10 and {self._ttl_cap} seconds")
            return value

        def future(value: float) -> float:
            if value <= now:
                raise ValidationFailed("expires_at is in the past")
            return value

        validators: dict[str, Callable[[Any], object]] = {
            "name": validate_name,
            "description": lambda v: str(v)[:2000],
            "attributes": validate_attributes,
            "segment": lambda v: None if v == "" else validate_segment(v),
            "labels": validate_labels,
            "scopes": validate_scopes,
            "resource_uris": lambda v: tuple(validate_resource_uri(u) for u in v),
            "max_ttl": ttl,
            "require_dpop": bool,
            "expires_at": future,
        }
        return {
            name: check(getattr(change, name))
            for name, check in validators.items()
            if getattr(change, name) is not None
        }

    def add_key(
        self,
        agent_id: str,
        jwk: dict[str, Any],
        expires_at: float | None = None,
        context: RequestContext = _SYSTEM,
    ) -> AgentKey:
        now = self._clock.now()
        key = self._new_key(jwk, now, expires_at)
        with writing(self._engine) as conn:
            agent = self._require(conn, agent_id)
            self._require_not_decommissioned(agent)
            if len(agent.usable_keys(now)) >= MAX_KEYS:
                raise Conflict(f"agent '{agent_id}' already has {MAX_KEYS} keys; remove one first")
            self._repo.add_key(conn, agent_id, key)
            publish(conn, AGENT_CHANGED, agent_id, {"key_added": key.kid}, now)
            self._audit(conn, "agent.key_added", context, agent_id, kid=key.kid, alg=key.alg)
        return key

    def remove_key(self, agent_id: str, kid: str, context: RequestContext = _SYSTEM) -> None:
        now = self._clock.now()
        with writing(self._engine) as conn:
            self._require(conn, agent_id)
            if not self._repo.remove_key(conn, agent_id, kid, now):
                raise NotFound(f"agent '{agent_id}' has no key '{kid[:80]}'")
            publish(conn, AGENT_CHANGED, agent_id, {"key_removed": kid}, now)
            self._audit(conn, "agent.key_removed", context, agent_id, kid=kid)

    def set_client_secret(self, agent_id: str, context: RequestContext = _SYSTEM) -> str:
        """Legacy ``client_secret``: generate one, store its argon2 hash, return it once."""
        if not self._allow_client_secret:
            raise Conflict("client_secret authentication is disabled (TESSERA_ALLOW_CLIENT_SECRET)")
        secret = secrets.token_urlsafe(32)
        digest = self._hasher.hash(secret)
        now = self._clock.now()
        with writing(self._engine) as conn:
            agent = self._require(conn, agent_id)
            self._require_not_decommissioned(agent)
            self._repo.set_secret_hash(conn, agent_id, digest, now)
            publish(conn, AGENT_CHANGED, agent_id, {"secret": "set"}, now)
            self._audit(conn, "agent.secret_set", context, agent_id)
        return secret

    # --- helpers -------------------------------------------------------------------------

    def _new_key(self, jwk: dict[str, Any], now: float, expires_at: float | None) -> AgentKey:
        kid, alg, public = normalise_public_jwk(jwk)
        if expires_at is not None and expires_at <= now:
            raise ValidationFailed("key expires_at is in the past")
        return AgentKey(kid=kid, alg=alg, jwk=public, created_at=now, expires_at=expires_at)

    def _require(self, conn: Connection, agent_id: str) -> Agent:
        agent = self._repo.get(conn, agent_id)
        if agent is None:
            raise NotFound(f"no agent '{agent_id[:80]}'")
        return agent

    @staticmethod
    def _require_not_decommissioned(agent: Agent) -> None:
        if agent.state is LifecycleState.DECOMMISSIONED:
            raise Conflict(f"agent '{agent.id}' is decommissioned")
