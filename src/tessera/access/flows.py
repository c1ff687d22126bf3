"""The two ways an agent asks, and how an approved request becomes a token.

1. At the token endpoint: a ``client_credentials`` request (typically with
   ``authorization_details`` of type ``agent_task``) whose ``issue_token`` policy
   carries ``@approval``. What is asked — scopes, audiences, authorization details —
   is stored and hashed; the endpoint answers per CIBA §7.3.
2. ``POST /access/v1/requests``: one action on one resource with its context (the
   AuthZEN evaluation shape, the subject being the calling agent). Policy permits
   (an immediate grant), denies, or asks for approval.

Either way the agent redeems ``auth_req_id`` with the CIBA grant. The token carries
the agent's task and a ``tessera_approval`` entry (approval id, grant id, the hash of
what was approved, the grant's expiry) in ``authorization_details``.
"""

from __future__ import annotations

from typing import Any

from tessera.access.binding import asked_action
from tessera.access.grants import GrantService
from tessera.access.requests import AccessRequest, Kind, approval_detail
from tessera.access.service import AccessService, Opened
from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import Clock
from tessera.errors import ExpiredToken, Forbidden, ValidationFailed
from tessera.identity.agents import Agent
from tessera.policy.decisions import DecisionService, Question
from tessera.policy.entities import EntityIndex
from tessera.storage.single_use import single_use_key
from tessera.tokens.authorization_details import AGENT_TASK, TASK_ID
from tessera.tokens.client_auth import SingleUse
from tessera.tokens.grants import PendingApproval
from tessera.tokens.grants.ciba import ApprovedAccess
from tessera.tokens.issuer import TokenGrant

REDEMPTION_GRACE = 86400


def _task(details: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> dict[str, Any]:
    return next((d for d in details if d.get("type") == AGENT_TASK), {})


class TokenApprovals:
    """The token endpoint's side: open requests for token grants; redeem approved ones."""

    def __init__(
        self,
        access: AccessService,
        grants: GrantService,
        clock: Clock,
        *,
        default_audience: str,
        max_ttl: int,
    ) -> None:
        self._access = access
        self._grants = grants
        self._clock = clock
        self._default_audience = default_audience
        self._max_ttl = max_ttl

    def token_needs_approval(
        self,
        grant: TokenGrant,
        obligations: dict[str, str],
        *,
        policy_version: str | None,
        policies: tuple[str, ...],
        callback_token: str | None,
    ) -> None:
        agent = grant.agent
        context = RequestContext(Actor(ActorType.AGENT, agent.id), ip=grant.client_ip)
        emergency = self._grants.break_glass.active(agent.id, self._clock.now())
        if emergency is not None:
            use = {"action": "issue_token", "scope": " ".join(grant.scopes), "aud": list(grant.audience)}
            self._grants.record_use(emergency, agent.id, use, context)
            return
        if callback_token is not None and not 1 <= len(callback_token) <= 1024:
            raise ValidationFailed("client_notification_token must be 1-1024 characters")
        task = _task(grant.authorization_details)
        asked = {
            "agent": agent.id,
            "scope": list(grant.scopes),
            "audience": list(grant.audience),
            "authorization_details": list(grant.authorization_details),
        }
        opened = self._access.open(
            agent=agent,
            kind=Kind.TOKEN,
            asked=asked,
            obligations=obligations,
            task_id=task.get("task_id"),
            purpose=str(task.get("purpose") or "token request"),
            duration=None,
            policy_version=policy_version,
            policies=policies,
            context=context,
            callback_token=callback_token,
            audience=grant.audience,
        )
        raise PendingApproval(opened.response(self._clock.now()))

    def approved(self, auth_req_id: str, agent: Agent) -> ApprovedAccess:
        request = self._access.poll(auth_req_id, agent.id)
        if request.grant_id is None:  # approved requests always have one; refuse rather than guess
            raise ExpiredToken("the approved request has no grant")
        grant = self._grants.get(request.grant_id)
        now = self._clock.now()
        remaining = int(grant.expires_at - now)
        if grant.revoked_at is not None or remaining < 1:
            raise ExpiredToken("the grant for this auth_req_id has expired or was revoked")
        evidence = approval_detail(request, grant.id, grant.expires_at)
        asked = request.asked
        if request.kind is Kind.TOKEN:
            scopes = tuple(asked.get("scope", ()))
            audience = tuple(asked.get("audience", ())) or (self._default_audience,)
            details = (*asked.get("authorization_details", ()), evidence)
        else:
            scopes = agent.scopes
            audience = request.audience or (self._default_audience,)
            task: list[dict[str, Any]] = []
            if request.task_id:
                task.append(
                    {
                        "type": AGENT_TASK,
                        "task_id": request.task_id,
                        "purpose": request.purpose,
                        "resources": [],
                        "actions": [str(asked.get("action"))],
                    }
                )
            details = (*task, evidence)
        return ApprovedAccess(
            request_id=request.id,
            scopes=scopes,
            audience=audience,
            authorization_details=tuple(details),
            ttl=min(remaining, self._max_ttl),
            redemption=SingleUse(
                single_use_key("ciba", agent.id, request.id), grant.expires_at + REDEMPTION_GRACE
            ),
            policy_version=request.policy_version,
            policies=request.policies,
        )

    def redeemed(self, approved: ApprovedAccess, jti: str) -> None:
        self._access.redeemed(self._access.get(approved.request_id), jti)


class ActionRequests:
    """``POST /access/v1/requests``: ask policy about one action; grant, refuse, or ask a person."""

    def __init__(self, access: AccessService, decisions: DecisionService, entities: EntityIndex) -> None:
        self._access = access
        self._decisions = decisions
        self._entities = entities

    def ask(
        self,
        agent: Agent,
        question: Question,
        *,
        task_id: str | None,
        purpose: str,
        duration: int | None,
        audience: tuple[str, ...],
        callback_token: str | None,
        context: RequestContext,
    ) -> Opened:
        if task_id is not None and not TASK_ID.fullmatch(task_id):
            raise ValidationFailed(f"task_id '{task_id[:60]}' must be 1-128 characters [A-Za-z0-9._:/-]")
        purpose = " ".join(purpose.split())
        if not 1 <= len(purpose) <= 500:
            raise ValidationFailed("purpose must be 1-500 characters: say why the access is needed")
        decision = self._decisions.decide([question], context, enforce_approvals=False)[0]
        if not decision.allowed:
            why = "; ".join(decision.errors) or "no policy permits it"
            raise Forbidden(
                f"policy denies '{question.action}' on '{question.resource.key[:120]}' ({why[:200]})"
            )
        entity = question.entities.get(question.resource.key) or self._entities.get(question.resource)
        owner = (entity or {}).get("attrs", {}).get("owner")
        return self._access.open(
            agent=agent,
            kind=Kind.ACTION,
            asked=asked_action(question.principal, question.action, question.resource, question.context),
            obligations=decision.obligations,
            task_id=task_id,
            purpose=purpose,
            duration=duration,
            policy_version=decision.policy_version,
            policies=decision.determining,
            context=context,
            resource_owner=owner if isinstance(owner, str) else None,
            callback_token=callback_token,
            audience=audience,
        )


def request_summary(request: AccessRequest) -> dict[str, Any]:
    """The short form for lists."""
    return {
        "id": request.id,
        "status": request.status.value,
        "kind": request.kind.value,
        "agent_id": request.agent_id,
        "owner": request.owner,
        "task_id": request.task_id,
        "purpose": request.purpose,
        "asked_hash": request.asked_hash,
        "approver_groups": list(request.eligible_groups),
        "approvals": sum(1 for v in request.votes if v.decision == "approve"),
        "approvals_required": request.approvals_required,
        "created_at": request.created_at,
        "expires_at": request.expires_at,
    }
