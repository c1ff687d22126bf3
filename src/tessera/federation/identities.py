"""The local agent an external identity acts as (fixed, chosen by a claim, or ephemeral).

An *ephemeral federated identity* is an ordinary agent record, so everything that
works on agents works on it (policy, suspend, quarantine, revocation, audit):

- id ``fed_`` + the first 32 hex digits of SHA-256(``iss`` NUL ``sub``): the same
  external identity always maps to the same record, on every replica;
- name: the external subject; owner, scopes, segment, ``max_ttl``, ``require_dpop``:
  from the issuer's subject mapping; label ``federated``;
- attributes (Cedar tags): the mapped attributes plus ``federated_issuer``,
  ``federated_subject`` and ``region`` (when the issuer has one);
- it expires ``identity_ttl`` seconds after its last use; a use moves the expiry
  forward and refreshes the attributes (written only when they changed or less
  than half the lifetime is left, so a busy workload does not write every time). A suspended, quarantined or
  decommissioned federated identity stays so: the external token cannot revive it.

For fixed and claim-mapped agents the registry's attributes stay as registered;
the mapped ones are shown to policy (:func:`policy_view`) and carried in the token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine

from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import Conflict, InvalidGrant, ValidationFailed
from tessera.events.change_feed import publish
from tessera.federation.claims import scalar_text
from tessera.federation.issuers import SubjectKind, SubjectMapping
from tessera.federation.verifier import FederatedIdentity
from tessera.identity.agents import Agent, LifecycleState, validate_attributes, validate_name
from tessera.identity.repository import AgentRepository
from tessera.storage.database import writing
from tessera.tokens.revocation import AGENT_CHANGED, RevocationState, agent_change_payload

EPHEMERAL_PREFIX = "fed_"
FEDERATED_LABEL = "federated"

AgentLookup = Callable[[str], Agent | None]


def ephemeral_agent_id(issuer: str, subject: str) -> str:
    return EPHEMERAL_PREFIX + hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()[:32]


def identity_attributes(identity: FederatedIdentity) -> dict[str, str]:
    attributes = dict(identity.attributes)
    attributes["federated_issuer"] = identity.issuer.issuer[:1024]
    attributes["federated_subject"] = identity.subject[:1024]
    if identity.region:
        attributes["region"] = identity.region
    return attributes


def policy_view(agent: Agent, identity: FederatedIdentity) -> Agent:
    """The agent as the PDP sees it for this request: registry attributes win over mapped ones."""
    return replace(agent, attributes={**identity_attributes(identity), **agent.attributes})


@dataclass(frozen=True, slots=True)
class ResolvedIdentity:
    agent: Agent
    #: An ephemeral identity to create or renew (:meth:`FederatedIdentities.record`) before issuing.
    needs_record: bool


class FederatedIdentities:
    def __init__(
        self,
        engine: Engine,
        repository: AgentRepository,
        clock: Clock,
        revocation: RevocationState,
        *,
        lookup: AgentLookup,
        identity_ttl: int,
        auditor: Auditor | None = None,
        listeners: list[Callable[[Agent], None]] | None = None,
    ) -> None:
        self._engine = engine
        self._repo = repository
        self._clock = clock
        self._revocation = revocation
        self._lookup = lookup
        self._identity_ttl = identity_ttl
        self._auditor = auditor
        self._listeners = list(listeners or [])

    def resolve(self, identity: FederatedIdentity) -> ResolvedIdentity:
        """The local agent for ``identity``, read but not written; ``InvalidGrant`` if there is none.

        For an ephemeral identity this is the record as :meth:`record` would write it,
        so policy decides on it before anything is stored. A record that is current
        (same attributes and settings, more than half its lifetime left) needs no write.
        """
        mapping = identity.issuer.subject
        if mapping.kind is SubjectKind.EPHEMERAL:
            now = self._clock.now()
            current = self._lookup(self.ephemeral_id(identity))
            candidate = self._ephemeral(identity, current, now)
            if current is not None and self._is_current(current, candidate, now):
                return ResolvedIdentity(current, needs_record=False)
            return ResolvedIdentity(candidate, needs_record=True)
        if mapping.kind is SubjectKind.AGENT:
            agent_id = mapping.agent_id or ""
        else:
            assert mapping.claim is not None  # noqa: S101 - set for this kind
            value = scalar_text(mapping.claim.read(identity.claims))
            if value is None or value not in mapping.agents:
                shown = f"'{value[:80]}'" if value is not None else "absent"
                raise InvalidGrant(
                    f"claim '{mapping.claim.text}' ({shown}) maps to no agent "
                    f"of issuer '{identity.issuer.issuer[:80]}'"
                )
            agent_id = mapping.agents[value]
        agent = self._lookup(agent_id)
        if agent is None:
            raise InvalidGrant(
                f"issuer '{identity.issuer.issuer[:80]}' maps to agent '{agent_id}', which does not exist"
            )
        return ResolvedIdentity(agent, needs_record=False)

    def _is_current(self, current: Agent, candidate: Agent, now: float) -> bool:
        lifetime = (candidate.expires_at or now) - now
        return (
            current.expires_at is not None
            and current.expires_at - now > lifetime / 2
            and all(
                getattr(current, name) == getattr(candidate, name)
                for name in ("attributes", "scopes", "segment", "max_ttl", "require_dpop")
            )
        )

    @staticmethod
    def ephemeral_id(identity: FederatedIdentity) -> str:
        return ephemeral_agent_id(identity.issuer.issuer, identity.subject)

    def _ephemeral(self, identity: FederatedIdentity, current: Agent | None, now: float) -> Agent:
        """The ephemeral record for ``identity``: ``current`` renewed, or a new one."""
        mapping = identity.issuer.subject
        agent_id = self.ephemeral_id(identity)
        if current is not None and current.state is not LifecycleState.ACTIVE:
            raise InvalidGrant(
                f"federated identity '{agent_id}' is {current.state.value}; no tokens are issued to it"
            )
        try:
            attributes = validate_attributes(identity_attributes(identity))
            name = validate_name("".join(c for c in identity.subject if ord(c) >= 32)[:200] or agent_id)
        except ValidationFailed as exc:
            raise InvalidGrant(f"the external identity cannot be mapped: {exc.description}") from exc
        expires_at = now + max(self._identity_ttl, mapping.max_ttl * 2)
        if current is not None:
            return replace(current, updated_at=now, **_renewed_fields(attributes, mapping, expires_at))
        return Agent(
            id=agent_id,
            name=name,
            owner=mapping.owner or "",
            description=f"federated identity from {identity.issuer.issuer}"[:2000],
            attributes=attributes,
            segment=mapping.segment,
            labels=(FEDERATED_LABEL,),
            scopes=mapping.scopes,
            resource_uris=(),
            max_ttl=mapping.max_ttl,
            require_dpop=mapping.require_dpop,
            state=LifecycleState.ACTIVE,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )

    def record(self, identity: FederatedIdentity, context: RequestContext) -> Agent:
        """Create or renew an ephemeral identity's record (audited, on the change feed)."""
        agent_id = self.ephemeral_id(identity)
        for _attempt in range(2):  # a concurrent first use on another replica wins the insert once
            try:
                agent = self._write(identity, agent_id, context)
            except Conflict:
                continue
            self._revocation.set_agent(agent.id, agent.state, agent.expires_at)
            for listener in self._listeners:
                listener(agent)
            return agent
        raise InvalidGrant(f"federated identity '{agent_id}' could not be recorded; retry")

    def _write(self, identity: FederatedIdentity, agent_id: str, context: RequestContext) -> Agent:
        now = self._clock.now()
        with writing(self._engine) as conn:
            current = self._repo.get(conn, agent_id)
            agent = self._ephemeral(identity, current, now)
            if current is None:
                self._repo.add(conn, agent)
                kind = "federation.identity_created"
            else:
                fields = _renewed_fields(agent.attributes, identity.issuer.subject, agent.expires_at)
                self._repo.update(conn, agent_id, fields, now)
                kind = "federation.identity_renewed"
            publish(conn, AGENT_CHANGED, agent_id, agent_change_payload(agent), now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        kind,
                        context,
                        subject=agent_id,
                        data={
                            "issuer": identity.issuer.issuer,
                            "issuer_id": identity.issuer.id,
                            "external_subject": identity.subject,
                            "attributes": sorted(agent.attributes),
                            "expires_at": agent.expires_at,
                        },
                    ),
                )
        return agent


def _renewed_fields(
    attributes: dict[str, str], mapping: SubjectMapping, expires_at: float | None
) -> dict[str, Any]:
    """What a renewal rewrites: attributes and expiry, and the mapping's current settings."""
    return {
        "attributes": attributes,
        "scopes": mapping.scopes,
        "segment": mapping.segment,
        "max_ttl": mapping.max_ttl,
        "require_dpop": mapping.require_dpop,
        "expires_at": expires_at,
    }
