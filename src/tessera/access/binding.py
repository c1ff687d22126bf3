"""Holding decisions to what was approved.

A permit whose policy carries an ``@approval`` obligation stands only if

- the agent's token carries a ``tessera_approval`` entry in ``authorization_details``
  (RFC 9396) whose ``asked_hash`` equals the hash of *this* request — the agent,
  the action, the resource and the context the PEP passes — and whose grant has
  not expired (a revoked grant's tokens are revoked, so they never get here); or
- a break-glass grant is active for the agent (each such use is recorded).

Otherwise the decision becomes deny, keeping its obligations so the PEP can tell
the agent to ask (``POST /access/v1/requests``). An approval for "pay 500 to X"
therefore cannot pay 5,000 to Y: the hash differs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tessera.access.canonical import asked_hash
from tessera.access.grants import GrantService
from tessera.access.requests import APPROVAL_DETAIL
from tessera.access.rules import needs_approval
from tessera.audit.service import RequestContext
from tessera.clock import Clock
from tessera.policy.entities import Uid
from tessera.policy.pdp import Decision

#: Context keys Tessera derives (or the PEP passes as facts about the caller): not part
#: of what an agent asks, so not hashed.
DERIVED_CONTEXT = frozenset(
    {
        "time",
        "agent_state",
        "risk",
        "task_id",
        "purpose",
        "delegation_depth",
        "network_zone",
        "client_ip",
        "posture",
        "task_resources",
        "access_token",
    }
)


def asked_action(principal: Uid, action: str, resource: Uid, context: dict[str, Any]) -> dict[str, Any]:
    """What an agent asks to do, in the form that is hashed and approved."""
    asked_context = {k: v for k, v in context.items() if k not in DERIVED_CONTEXT}
    if asked_context.get("action") == {}:
        del asked_context["action"]
    return {
        "agent": principal.id,
        "action": action,
        "resource": {"type": resource.type, "id": resource.id},
        "context": asked_context,
    }


def approval_of(details: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((d for d in details if isinstance(d, dict) and d.get("type") == APPROVAL_DETAIL), None)


class ApprovalEnforcer:
    def __init__(self, clock: Clock, grants: GrantService) -> None:
        self._clock = clock
        self._grants = grants

    def enforce(
        self,
        decision: Decision,
        principal: Uid,
        action: str,
        resource: Uid,
        *,
        context: dict[str, Any],
        approval: dict[str, Any] | None,
        caller: RequestContext,
    ) -> Decision:
        if not decision.allowed or not needs_approval(decision.obligations):
            return decision
        now = self._clock.now()
        asked = asked_action(principal, action, resource, context)
        if approval is not None:
            expires = approval.get("expires_at")
            if not isinstance(expires, int | float) or now >= expires:
                return self._deny(decision, "the approval in the token has expired")
            if approval.get("asked_hash") != asked_hash(asked):
                return self._deny(decision, "the request differs from what was approved (hash mismatch)")
            return decision
        grant_id = self._grants.break_glass.active(principal.id, now)
        if grant_id is not None:
            what = {"action": action, "resource": f"{resource.type}::{resource.id}"[:300]}
            self._grants.record_use(
                grant_id, principal.id, {**what, "decision_id": decision.decision_id}, caller
            )
            return decision
        return self._deny(
            decision,
            f"a person's approval is required (approval '{decision.obligations.get('approval')}'); "
            "ask at /access/v1/requests",
        )

    @staticmethod
    def _deny(decision: Decision, reason: str) -> Decision:
        return replace(decision, allowed=False, errors=(*decision.errors, reason))
