"""Asking the PDP whether a token may be issued, and applying its obligations.

For each audience the token would carry, the token endpoint asks::

    principal = Agent::"<agent id>", action = Action::"issue_token",
    resource  = Audience::"<aud>",   context.scopes = the scopes requested

Every audience must be permitted. ``@max_ttl`` obligations cap the lifetime; an
``@approval(…)`` obligation refuses the request with ``access_denied`` unless the
caller handles approvals (``approvals_allowed``: the token endpoint then answers
per CIBA and asks a person, see :mod:`tessera.access`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tessera.clock import Clock
from tessera.errors import AccessDenied, InvalidScope
from tessera.identity.agents import Agent
from tessera.policy.context import ContextBuilder, Delegation, TaskFacts, TokenFacts
from tessera.policy.entities import AGENT_TYPE, Uid, agent_entity
from tessera.policy.pdp import Decision, DecisionRequest, PolicyDecisionPoint, merge_obligations

ISSUE_ACTION = "issue_token"
AUDIENCE_TYPE = "Audience"


@dataclass(frozen=True, slots=True)
class IssuanceDecision:
    decisions: tuple[Decision, ...]
    obligations: dict[str, str]

    @property
    def policy_version(self) -> str | None:
        return self.decisions[0].policy_version if self.decisions else None

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for d in self.decisions for p in d.determining))

    @property
    def decision_ids(self) -> tuple[str, ...]:
        return tuple(d.decision_id for d in self.decisions)

    @property
    def needs_approval(self) -> bool:
        return bool(self.obligations.get("approval", "").strip())

    def cap_ttl(self, ttl: int) -> int:
        limit = self.obligations.get("max_ttl", "")
        return min(ttl, int(limit)) if limit.isdigit() and int(limit) > 0 else ttl


class IssuancePolicy:
    def __init__(
        self,
        pdp: PolicyDecisionPoint,
        contexts: ContextBuilder,
        clock: Clock,
        *,
        risk: Callable[[str, float], tuple[int, list[str]]] | None = None,
    ) -> None:
        self._pdp = pdp
        self._contexts = contexts
        self._clock = clock
        #: The agent's risk score and its detectors (``tessera.detect``), for ``context.risk``.
        self._risk = risk

    def check(
        self,
        agent: Agent,
        *,
        scopes: tuple[str, ...],
        audience: tuple[str, ...],
        authorization_details: tuple[dict[str, Any], ...],
        client_ip: str | None,
        delegation: Delegation | None = None,
        task_facts: TaskFacts | None = None,
        approvals_allowed: bool = False,
    ) -> IssuanceDecision:
        task = next((d for d in authorization_details if d.get("type") == "agent_task"), {})
        facts = TokenFacts(
            task_id=str(task.get("task_id", "")),
            purpose=str(task.get("purpose", "")),
            delegation_depth=delegation.depth if delegation else 0,
            delegation=delegation,
            task=task_facts,
        )
        now = self._clock.now()
        risk, reasons = self._risk(agent.id, now) if self._risk is not None else (0, [])
        context = self._contexts.build(
            {"scopes": list(scopes), "task_resources": list(task.get("resources", []))},
            now=now,
            agent_state=agent.state.value,
            risk=risk,
            token=facts,
            client_ip=client_ip,
        )
        context["risk_reasons"] = reasons
        context["approval_required"] = False
        principal = Uid(AGENT_TYPE, agent.id)
        # The agent as authentication just read it, not as this worker's change feed last heard
        # of it: an agent registered through another replica gets its token at once.
        current = {principal.key: agent_entity(agent)}
        requests = [
            DecisionRequest(principal, ISSUE_ACTION, Uid(AUDIENCE_TYPE, aud), context, current)
            for aud in audience
        ]
        decisions = tuple(self._pdp.decide_batch(requests))
        for aud, decision in zip(audience, decisions, strict=True):
            if not decision.allowed:
                why = f" ({'; '.join(decision.errors)})" if decision.errors else ""
                raise InvalidScope(
                    f"policy {decision.policy_version} does not allow scope '{' '.join(scopes)}' "
                    f"for audience '{aud[:80]}'{why}"
                )
        obligations = merge_obligations([d.obligations for d in decisions])
        if obligations.get("approval", "").strip() and not approvals_allowed:
            raise AccessDenied("policy requires a person's approval for this request")
        return IssuanceDecision(decisions, obligations)
