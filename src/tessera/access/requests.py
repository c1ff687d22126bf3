"""An access request as stored: what an agent asked, who may answer, and where it stands.

Statuses: ``pending`` → ``approved`` (→ ``redeemed`` once its token is issued),
``denied`` or ``expired``. ``auth_req_id`` (OpenID CIBA Core 1.0 §7.3) is an
opaque random value shown once to the agent and stored as its SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tessera.access.canonical import asked_hash

APPROVAL_DETAIL = "tessera_approval"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REDEEMED = "redeemed"
    DENIED = "denied"
    EXPIRED = "expired"


class Kind(StrEnum):
    TOKEN = "token"  # at the token endpoint: scopes, audiences, authorization_details
    ACTION = "action"  # POST /access/v1/requests: one action on one resource, with its context


@dataclass(frozen=True, slots=True)
class Vote:
    username: str
    decision: str
    reason: str | None
    created_at: float

    def view(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "decision": self.decision,
            "reason": self.reason,
            "at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class AccessRequest:
    id: str
    kind: Kind
    agent_id: str
    owner: str
    task_id: str | None
    purpose: str
    asked: dict[str, Any]
    asked_hash: str
    status: Status
    groups: tuple[str, ...]
    group_index: int
    approvals_required: int
    separation: str | None
    ttl: int
    poll_interval: int
    risk: int
    policy_version: str | None
    policies: tuple[str, ...]
    created_at: float
    expires_at: float
    escalate_after: int | None = None
    escalate_at: float | None = None
    last_polled_at: float | None = None
    decided_at: float | None = None
    decision_reason: str | None = None
    grant_id: str | None = None
    callback_token: str | None = None
    audience: tuple[str, ...] = ()
    votes: tuple[Vote, ...] = field(default=())

    @property
    def eligible_groups(self) -> tuple[str, ...]:
        """The groups asked so far: the first, plus each one escalation has reached."""
        return self.groups[: self.group_index + 1]

    @property
    def intact(self) -> bool:
        """The stored ``asked`` still hashes to the stored hash (nothing edited it since)."""
        return asked_hash(self.asked) == self.asked_hash

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status.value,
            "agent_id": self.agent_id,
            "owner": self.owner,
            "task_id": self.task_id,
            "purpose": self.purpose,
            "asked": self.asked,
            "asked_hash": self.asked_hash,
            "duration": self.ttl,
            "risk": self.risk,
            "approver_groups": list(self.eligible_groups),
            "escalation_groups": list(self.groups[self.group_index + 1 :]),
            "approvals_required": self.approvals_required,
            "separation": self.separation,
            "policy_version": self.policy_version,
            "policies": list(self.policies),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "escalate_at": self.escalate_at,
            "decided_at": self.decided_at,
            "decision_reason": self.decision_reason,
            "grant_id": self.grant_id,
            "votes": [v.view() for v in self.votes],
        }


def request_from_row(row: Any, votes: tuple[Vote, ...] = ()) -> AccessRequest:
    return AccessRequest(
        id=row.id,
        kind=Kind(row.kind),
        agent_id=row.agent_id,
        owner=row.owner,
        task_id=row.task_id,
        purpose=row.purpose,
        asked=dict(row.asked),
        asked_hash=row.asked_hash,
        status=Status(row.status),
        groups=tuple(row.groups),
        group_index=row.group_index,
        approvals_required=row.approvals_required,
        separation=row.separation,
        ttl=row.ttl,
        poll_interval=row.poll_interval,
        risk=row.risk,
        policy_version=row.policy_version,
        policies=tuple(row.policies or ()),
        created_at=row.created_at,
        expires_at=row.expires_at,
        escalate_after=row.escalate_after,
        escalate_at=row.escalate_at,
        last_polled_at=row.last_polled_at,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
        grant_id=row.grant_id,
        callback_token=row.callback_token,
        audience=tuple(row.audience or ()),
        votes=votes,
    )


def approval_detail(request: AccessRequest, grant_id: str, expires_at: float) -> dict[str, Any]:
    """The ``authorization_details`` entry (RFC 9396 §2) a token issued under an approval carries."""
    return {
        "type": APPROVAL_DETAIL,
        "approval_id": request.id,
        "grant_id": grant_id,
        "asked_hash": request.asked_hash,
        "expires_at": int(expires_at),
    }
