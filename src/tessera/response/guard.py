"""What continuous verification enforces when a token is issued.

- an active kill rule in scope (agent, task, delegator or the agent's owner)
  refuses the token: from memory first, then from the database inside the
  issuing transaction (a replica that has not yet heard of a new rule still refuses);
- a playbook's lifetime cap for the agent shortens the token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import Connection

from tessera.detect.risk import RiskView
from tessera.errors import UnauthorizedClient
from tessera.policy.entities import AGENT_TYPE, EntityIndex, Uid
from tessera.response.controls import ResponseControls
from tessera.response.kill_switch import KillRules, blocking_in
from tessera.tokens.access_tokens import AccessToken
from tessera.tokens.issuer import TokenGrant


def _refused(grant: TokenGrant, rule_id: str) -> UnauthorizedClient:
    return UnauthorizedClient(
        f"agent '{grant.agent.id}' is stopped by kill switch '{rule_id}'; no tokens are issued to it"
    )


class ResponseGuard:
    def __init__(self, kills: KillRules, controls: ResponseControls) -> None:
        self._kills = kills
        self._controls = controls

    def admit(self, grant: TokenGrant) -> TokenGrant:
        rule = self._kills.blocking(
            agent_id=grant.agent.id,
            task_id=grant.task_id,
            subject=grant.subject or grant.agent.id,
            owner=grant.agent.owner,
        )
        if rule is not None:
            raise _refused(grant, rule.id)
        cap = self._controls.ttl_cap(grant.agent.id)
        if cap is not None and grant.ttl > cap:
            return replace(grant, ttl=cap)
        return grant

    def admit_in(self, conn: Connection, grant: TokenGrant) -> None:
        rule_id = blocking_in(
            conn,
            agent_id=grant.agent.id,
            task_id=grant.task_id,
            subject=grant.subject or grant.agent.id,
            owner=grant.agent.owner,
        )
        if rule_id is not None:
            raise _refused(grant, rule_id)


def owner_lookup(entities: EntityIndex) -> Callable[[str], str | None]:
    """The agent's registered owner, from the in-memory entity index."""

    def owner_of(agent_id: str) -> str | None:
        entity = entities.get(Uid(AGENT_TYPE, agent_id))
        attrs = entity.get("attrs") if entity else None
        owner = attrs.get("owner") if isinstance(attrs, dict) else None
        return owner if isinstance(owner, str) else None

    return owner_of


class DecisionGuard:
    """Risk, required approvals and kill rules, for :class:`~tessera.policy.decisions.DecisionService`."""

    def __init__(
        self,
        risk_view: Callable[[str, float], RiskView],
        controls: ResponseControls,
        kills: KillRules,
        owner_of: Callable[[str], str | None],
    ) -> None:
        self._risk_view = risk_view
        self._controls = controls
        self._kills = kills
        self._owner_of = owner_of

    def risk(self, agent_id: str, now: float) -> tuple[int, list[str]]:
        view = self._risk_view(agent_id, now)
        return view.score, view.detectors

    def approval_required(self, agent_id: str) -> bool:
        return self._controls.approval_required(agent_id)

    def consume_approval(self, agent_id: str) -> bool:
        return self._controls.consume_approval(agent_id)

    def stopped(self, agent_id: str, task_id: str | None, subject: str | None = None) -> str | None:
        """For decisions: ``subject`` is the token's chain subject (RFC 8693), else the agent."""
        rule = self._kills.blocking(
            agent_id=agent_id, task_id=task_id, subject=subject or agent_id, owner=self._owner_of(agent_id)
        )
        return rule.id if rule else None

    def token_stopped(self, token: AccessToken) -> str | None:
        """For token validation and introspection: the token's agent, task, subject and owner."""
        rule = self._kills.blocking(
            agent_id=token.client_id,
            task_id=token.task_id,
            subject=token.subject,
            owner=self._owner_of(token.client_id),
        )
        return rule.id if rule else None
