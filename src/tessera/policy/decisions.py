"""Decisions as a service: enrich the context, decide, and record every decision.

Every decision is appended to the audit log through the group-commit writer and
returned only once durable. If the log cannot be written the decision is deny
(fail closed) — unless ``audit_decisions_fail_open`` is set, which answers and
logs loudly instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from tessera.audit.records import AuditEvent
from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.policy.context import ContextBuilder, TaskFacts, TokenFacts
from tessera.policy.entities import AGENT_TYPE, EntityIndex, Uid
from tessera.policy.pdp import Decision, DecisionRequest, NoPolicyLoaded, PolicyDecisionPoint
from tessera.tokens.revocation import RevocationState

AUDIT_UNAVAILABLE = "audit log unavailable; denied (fail closed)"
APPROVAL_REQUIRED = "approval_required"


class Verification(Protocol):
    """Continuous verification's say in decisions (``tessera.response.guard``)."""

    def risk(self, agent_id: str, now: float) -> tuple[int, list[str]]:
        """The agent's risk score and the detectors behind it."""

    def approval_required(self, agent_id: str) -> bool: ...

    def consume_approval(self, agent_id: str) -> bool: ...

    def stopped(self, agent_id: str, task_id: str | None, subject: str | None = None) -> str | None:
        """The id of an active kill rule that stops this agent, task or delegator, or None."""


class ApprovalCheck(Protocol):
    """Holds permits that need a person's approval to the approval the token carries
    (:class:`tessera.access.binding.ApprovalEnforcer`)."""

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
    ) -> Decision: ...


@dataclass(frozen=True, slots=True)
class Question:
    """One authorization question, as a PEP asks it."""

    principal: Uid
    action: str
    resource: Uid
    context: dict[str, Any] = field(default_factory=dict)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    token: TokenFacts | None = None


class TaskCalls(Protocol):
    def check_call(self, task_id: str) -> TaskFacts | str | None: ...


class DecisionService:
    def __init__(
        self,
        pdp: PolicyDecisionPoint,
        contexts: ContextBuilder,
        clock: Clock,
        revocation: RevocationState,
        auditor: Auditor | None,
        *,
        fail_open: bool,
    ) -> None:
        self.pdp = pdp
        self._contexts = contexts
        self._clock = clock
        self._revocation = revocation
        self._auditor = auditor
        self._fail_open = fail_open
        #: Registered tasks (``tessera.access``), set by the runtime.
        self.tasks: TaskCalls | None = None
        #: Set by the runtime once just-in-time access exists; ``None`` leaves decisions as they are.
        self.approvals: ApprovalCheck | None = None
        #: Set by the runtime once detection and response exist.
        self.verification: Verification | None = None

    def request_for(self, question: Question, client_ip: str | None = None) -> DecisionRequest:
        """The Cedar request with Tessera's context added (see ``tessera.policy.context``)."""
        state = "unknown"
        now = self._clock.now()
        risk, approval = 0, False
        reasons: list[str] = []
        if question.principal.type == AGENT_TYPE:
            state = self._revocation.agent_state(question.principal.id) or "unknown"
            if self.verification is not None:
                risk, reasons = self.verification.risk(question.principal.id, now)
                approval = self.verification.approval_required(question.principal.id)
        context = self._contexts.build(
            question.context,
            now=now,
            agent_state=state,
            risk=risk,
            token=question.token,
            client_ip=client_ip,
        )
        # Tessera's own, like risk: a caller cannot supply them.
        context["risk_reasons"] = reasons
        context["approval_required"] = approval
        context.setdefault("task_resources", [])
        return DecisionRequest(
            question.principal, question.action, question.resource, context, question.entities
        )

    def decide(
        self, questions: list[Question], caller: RequestContext, *, enforce_approvals: bool = True
    ) -> list[Decision]:
        """Decide and record; ``enforce_approvals=False`` returns permits that need approval as
        they are (for the access-request flow, which then asks a person)."""
        checked = [self._with_task(q) for q in questions]
        requests = [self.request_for(q, caller.ip) for q, _ in checked]
        asked = [r for r, (_, refusal) in zip(requests, checked, strict=True) if refusal is None]
        try:
            decided = iter(self.pdp.decide_batch(asked) if asked else [])
        except NoPolicyLoaded:
            return [self._denied(r, "no policy is active") for r in requests]
        decisions = [
            next(decided) if refusal is None else self._denied(r, refusal)
            for r, (_, refusal) in zip(requests, checked, strict=True)
        ]
        if self.verification is not None:
            # First: a kill switch or a playbook's required approval turns a permit into a deny.
            decisions = [self._verified(r, d) for r, d in zip(requests, decisions, strict=True)]
        if enforce_approvals and self.approvals is not None:
            check = self.approvals
            decisions = [
                check.enforce(
                    d,
                    q.principal,
                    q.action,
                    q.resource,
                    context=q.context,
                    approval=q.token.approval if q.token else None,
                    caller=caller,
                )
                for (q, _), d in zip(checked, decisions, strict=True)
            ]
        return self._record_all(requests, decisions, caller)

    def _with_task(self, question: Question) -> tuple[Question, str | None]:
        """A token bound to a registered task: its facts join the context, or the call is refused
        (task closed or expired, budget used up). Each call takes one unit of a budget."""
        token = question.token
        if self.tasks is None or token is None or not token.task_id:
            return question, None
        outcome = self.tasks.check_call(token.task_id)
        if outcome is None:
            return question, None
        if isinstance(outcome, str):
            return question, outcome
        return replace(question, token=replace(token, task=outcome)), None

    def _verified(self, request: DecisionRequest, decision: Decision) -> Decision:
        """A kill switch, or a playbook's required approval, turns a permit into a deny."""
        verification = self.verification
        if verification is None or request.principal.type != AGENT_TYPE:
            return decision
        agent_id = request.principal.id
        delegation = request.context.get("delegation")
        subject = delegation.get("subject") if isinstance(delegation, dict) else None
        rule_id = verification.stopped(
            agent_id, str(request.context.get("task_id") or "") or None, str(subject or "") or None
        )
        if rule_id is not None:
            return replace(
                decision, allowed=False, determining=(), errors=(f"stopped by kill switch '{rule_id}'",)
            )
        if decision.allowed and verification.consume_approval(agent_id):
            return replace(
                decision,
                allowed=False,
                determining=(),
                errors=(APPROVAL_REQUIRED,),
                obligations={**decision.obligations, APPROVAL_REQUIRED: "true"},
            )
        return decision

    def _denied(self, request: DecisionRequest, reason: str) -> Decision:
        return Decision(False, "", self.pdp.version or "", (), (reason,))

    def _record_all(
        self, requests: list[DecisionRequest], decisions: list[Decision], caller: RequestContext
    ) -> list[Decision]:
        """Submit every decision's record at once (one group commit for a batch), then wait."""
        if self._auditor is None:
            return decisions
        events = [self._event(r, d, caller) for r, d in zip(requests, decisions, strict=True)]
        stands = self._auditor.record_decisions(events, fail_open=self._fail_open)
        return [
            d if ok else Decision(False, d.decision_id, d.policy_version, (), (AUDIT_UNAVAILABLE,))
            for d, ok in zip(decisions, stands, strict=True)
        ]

    def _event(self, request: DecisionRequest, decision: Decision, caller: RequestContext) -> AuditEvent:
        entities = self.pdp.entities
        subject = request.principal.id if request.principal.type == AGENT_TYPE else request.principal.key
        return event(
            "decision",
            caller,
            subject=subject,
            task_id=str(request.context.get("task_id") or "") or None,
            outcome="permit" if decision.allowed else "deny",
            policies=decision.determining,
            policy_version=decision.policy_version,
            decision_id=decision.decision_id,
            data={
                "action": request.action,
                "resource": request.resource.key[:300],
                "errors": list(decision.errors)[:5],
                "network_zone": request.context.get("network_zone"),
                "delegation_depth": request.context.get("delegation_depth", 0),
                "beyond_task": beyond_task(request, entities),
            },
        )


def beyond_task(request: DecisionRequest, indexed: EntityIndex | None = None) -> bool:
    """True when the token declares task resources and this resource is not one of them.

    A resource is named by its ``uri`` attribute (as the starter policies match it)
    or, without one, by its id.
    """
    declared = request.context.get("task_resources")
    if not isinstance(declared, list) or not declared:
        return False
    entity = (
        request.entities.get(request.resource.key)
        or (indexed.get(request.resource) if indexed else None)
        or {}
    )
    attrs = entity.get("attrs") if isinstance(entity, dict) else None
    uri = attrs.get("uri") if isinstance(attrs, dict) else None
    name = uri if isinstance(uri, str) else request.resource.id
    return name not in declared
