"""Access requests and their approval flow, CIBA-style (OpenID CIBA Core 1.0).

An agent asks (at the token endpoint, or with ``POST /access/v1/requests``); policy
has already decided permit, deny or approval required. :meth:`AccessService.open`
stores the request with the canonical hash of exactly what was asked and answers
like a CIBA authentication request (§7.3: ``auth_req_id``, ``expires_in``,
``interval``). The agent polls the token endpoint with the CIBA grant (§10.1);
:meth:`poll` answers per §11: ``authorization_pending``, ``slow_down`` (the interval
grows by 5 s), ``access_denied``, ``expired_token``, or the approved request, whose
token the CIBA grant then issues once (the redemption is claimed in ``used_jtis``).

Approvers answer with :meth:`vote`; escalation and expiry run in :meth:`maintain`.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from tessera.access.canonical import asked_hash
from tessera.access.grants import GrantKind, GrantService
from tessera.access.notices import RequestNotices
from tessera.access.notify import Notifier
from tessera.access.requests import AccessRequest, Kind, Status, Vote, request_from_row
from tessera.access.rules import ApprovalDefaults, approval_rules, grant_ttl, needs_approval
from tessera.audit.records import AuditRecord
from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import (
    AccessDenied,
    AuthorizationPending,
    Conflict,
    ExpiredToken,
    Forbidden,
    InvalidGrant,
    NotFound,
    SlowDown,
    ValidationFailed,
)
from tessera.identity.agents import Agent
from tessera.identity.people import Person
from tessera.ids import IdGenerator
from tessera.storage.audit import AuditFilter, SqlAuditStore
from tessera.storage.database import reading, writing
from tessera.storage.tables import access_requests, approval_votes
from tessera.tokens.sealing import b64url_encode

SLOW_DOWN_STEP = 5  # CIBA §11 / RFC 8628 §3.5: "increase the interval by 5 seconds"
ACTIVITY_LIMIT = 10
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Opened:
    auth_req_id: str
    request: AccessRequest

    def response(self, now: float) -> dict[str, Any]:
        """CIBA §7.3: the acknowledgement, plus Tessera's ``status`` and ``request_id``."""
        return {
            "auth_req_id": self.auth_req_id,
            "expires_in": max(1, int(self.request.expires_at - now)),
            "interval": self.request.poll_interval,
            "status": "granted" if self.request.status is Status.APPROVED else "approval_pending",
            "request_id": self.request.id,
        }


def auth_req_hash(auth_req_id: str) -> str:
    return hashlib.sha256(auth_req_id.encode("utf-8", "surrogatepass")).hexdigest()


class AccessService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor,
        *,
        grants: GrantService,
        notifier: Notifier,
        defaults: ApprovalDefaults,
        auth_req_key: bytes,
        poll_interval: int,
        risk_of: Callable[[str], int],
        lookup_agent: Callable[[str], Agent | None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self._ids = ids
        self.auditor = auditor
        self.grants = grants
        self.defaults = defaults
        self._poll_interval = poll_interval
        self._auth_req_key = auth_req_key
        self.notices = RequestNotices(notifier, lookup_agent, self.auth_req_id)
        self._risk_of = risk_of
        self._lookup_agent = lookup_agent

    # --- opening a request -----------------------------------------------------------

    def open(
        self,
        *,
        agent: Agent,
        kind: Kind,
        asked: dict[str, Any],
        obligations: dict[str, str],
        task_id: str | None,
        purpose: str,
        duration: int | None,
        policy_version: str | None,
        policies: tuple[str, ...],
        context: RequestContext,
        resource_owner: str | None = None,
        callback_token: str | None = None,
        audience: tuple[str, ...] = (),
    ) -> Opened:
        """Store the request: approved at once (policy permits) or pending a person's answer."""
        now = self.clock.now()
        pending = needs_approval(obligations)
        rules = approval_rules(obligations, self.defaults, resource_owner)
        ttl = grant_ttl(duration, rules.max_ttl, self.defaults.grant_ttl)
        request_id = self._ids.new("areq")
        auth_req_id = self.auth_req_id(request_id)
        risk = self.risk(agent.id)
        digest = asked_hash(asked)
        expires = now + (rules.timeout if pending else ttl)
        row: dict[str, Any] = {
            "id": request_id,
            "auth_req_hash": auth_req_hash(auth_req_id),
            "kind": kind.value,
            "agent_id": agent.id,
            "owner": agent.owner,
            "task_id": task_id,
            "purpose": purpose[:500],
            "asked": asked,
            "asked_hash": digest,
            "audience": list(audience),
            "status": Status.PENDING.value,
            "groups": list(rules.groups),
            "group_index": 0,
            "approvals_required": rules.approvals_required,
            "separation": rules.separation,
            "ttl": ttl,
            "poll_interval": self._poll_interval,
            "risk": risk,
            "policy_version": policy_version,
            "policies": list(policies),
            "callback_token": callback_token,
            "created_at": now,
            "expires_at": expires,
            "escalate_after": rules.escalate_after if pending else None,
            "escalate_at": now + rules.escalate_after if pending and rules.escalate_after else None,
        }
        with writing(self.engine) as conn:
            conn.execute(insert(access_requests).values(**row))
            self.auditor.record_in(
                conn,
                event(
                    "access.requested",
                    context,
                    subject=agent.id,
                    task_id=task_id,
                    outcome="pending" if pending else "permit",
                    policies=policies,
                    policy_version=policy_version,
                    data={
                        "request_id": request_id,
                        "kind": kind.value,
                        "asked_hash": digest,
                        "approver_groups": list(rules.groups[:1]) if pending else [],
                        "approvals_required": rules.approvals_required if pending else 0,
                        "duration": ttl,
                        "risk": risk,
                    },
                ),
            )
            if not pending:
                stored = self._load(conn, request_id)
                if stored is not None:  # always: inserted just above, in this transaction
                    self._approve(conn, stored, granted_by="policy", kind=GrantKind.JIT)
        request = self.get(request_id)
        if pending:
            self.notices.approvers("Approval needed", request)
        return Opened(auth_req_id, request)

    def auth_req_id(self, request_id: str) -> str:
        """The request's ``auth_req_id``: an HMAC of its id, so only the server can compute it
        (it is stored only as a SHA-256, yet a ping callback can still name it)."""
        return b64url_encode(hmac.new(self._auth_req_key, request_id.encode(), hashlib.sha256).digest())

    def risk(self, agent_id: str) -> int:
        """The agent's current risk score, 0-100 (the one place access asks for it)."""
        return max(0, min(100, int(self._risk_of(agent_id))))

    # --- reading ---------------------------------------------------------------------

    def _load(self, conn: Connection, request_id: str, *, lock: bool = False) -> AccessRequest | None:
        query = select(access_requests).where(access_requests.c.id == request_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        votes = conn.execute(
            select(approval_votes)
            .where(approval_votes.c.request_id == request_id)
            .order_by(approval_votes.c.created_at)
        ).all()
        return request_from_row(
            row, tuple(Vote(v.username, v.decision, v.reason, v.created_at) for v in votes)
        )

    def get(self, request_id: str) -> AccessRequest:
        with reading(self.engine) as conn:
            request = self._load(conn, request_id)
        if request is None:
            raise NotFound(f"no access request '{request_id[:80]}'")
        return request

    def list(
        self, *, status: Status | None = None, agent_id: str | None = None, limit: int = 100
    ) -> list[AccessRequest]:
        query = select(access_requests)
        if status is not None:
            query = query.where(access_requests.c.status == status.value)
        if agent_id is not None:
            query = query.where(access_requests.c.agent_id == agent_id)
        with reading(self.engine) as conn:
            rows = conn.execute(query.order_by(access_requests.c.created_at.desc()).limit(limit)).all()
            cast = conn.execute(
                select(approval_votes)
                .where(approval_votes.c.request_id.in_([r.id for r in rows]))
                .order_by(approval_votes.c.created_at)
            ).all()
        votes: dict[str, builtins.list[Vote]] = {}
        for v in cast:
            votes.setdefault(v.request_id, []).append(Vote(v.username, v.decision, v.reason, v.created_at))
        return [request_from_row(r, tuple(votes.get(r.id, ()))) for r in rows]

    def recent_activity(self, agent_id: str) -> builtins.list[AuditRecord]:
        with reading(self.engine) as conn:
            return SqlAuditStore().search(
                conn, AuditFilter(agent=agent_id), limit=ACTIVITY_LIMIT, newest_first=True
            )

    def show(self, request_id: str) -> dict[str, Any]:
        """What an approver sees: the request, the agent, its current risk and recent activity."""
        request = self.get(request_id)
        agent = self._lookup_agent(request.agent_id)
        view = request.view()
        view["agent"] = (
            {"id": agent.id, "name": agent.name, "owner": agent.owner, "state": agent.state.value}
            if agent is not None
            else {"id": request.agent_id, "state": "gone"}
        )
        view["current_risk"] = self.risk(request.agent_id)
        view["recent_activity"] = [
            {
                "at": r.ts_ms / 1000,
                "type": r.type,
                "outcome": (r.decision or {}).get("outcome"),
                "action": r.data.get("action"),
                "resource": r.data.get("resource"),
                "reason": r.reason,
            }
            for r in self.recent_activity(request.agent_id)
        ]
        return view

    # --- the agent polls (CIBA §11) ----------------------------------------------------

    def poll(self, auth_req_id: str, agent_id: str) -> AccessRequest:
        """The approved request, ready to redeem; otherwise raise the CIBA §11 error."""
        now = self.clock.now()
        outcome: Exception | None = None
        with writing(self.engine) as conn:
            row = conn.execute(
                select(access_requests)
                .where(access_requests.c.auth_req_hash == auth_req_hash(auth_req_id))
                .with_for_update()
            ).first()
            if row is None or row.agent_id != agent_id:
                raise InvalidGrant("unknown auth_req_id")
            request = request_from_row(row)
            if request.status is Status.REDEEMED:
                raise InvalidGrant("auth_req_id has already been redeemed")
            if request.status is Status.DENIED:
                raise AccessDenied(f"the request was denied: {request.decision_reason or 'no reason given'}")
            if request.status is Status.EXPIRED or (
                request.status is Status.PENDING and now >= request.expires_at
            ):
                raise ExpiredToken("auth_req_id has expired; the request was not answered in time")
            if request.status is Status.APPROVED:
                if request.grant_id is not None and self.grants.get(request.grant_id).expires_at <= now:
                    raise ExpiredToken("the approved grant has expired before its token was collected")
                return request
            interval = request.poll_interval
            if request.last_polled_at is not None and now - request.last_polled_at < request.poll_interval:
                interval += SLOW_DOWN_STEP
                outcome = SlowDown(f"polling faster than every {request.poll_interval} s; wait {interval} s")
            else:
                outcome = AuthorizationPending("the request is waiting for approval")
            conn.execute(
                update(access_requests)
                .where(access_requests.c.id == request.id)
                .values(last_polled_at=now, poll_interval=interval)
            )
        raise outcome

    def redeemed(self, request: AccessRequest, jti: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(
                update(access_requests)
                .where(access_requests.c.id == request.id, access_requests.c.status == Status.APPROVED.value)
                .values(status=Status.REDEEMED.value)
            )
        if request.grant_id is not None:
            self.grants.add_token(request.grant_id, jti)

    # --- approvers answer ------------------------------------------------------------

    def vote(
        self,
        request_id: str,
        person: Person,
        *,
        approve: bool,
        reason: str | None,
        shown_hash: str | None,
        context: RequestContext,
    ) -> AccessRequest:
        """One approver's answer; the request is decided once enough approve, or one denies."""
        if person.role != "approver" or person.disabled_at is not None:
            raise Forbidden(f"'{person.username}' has role '{person.role}'; only approvers answer requests")
        reason = " ".join((reason or "").split())[:MAX_REASON] or None
        if approve and not shown_hash:
            raise ValidationFailed("asked_hash is required: approve exactly what you were shown")
        if not approve and not reason:
            raise ValidationFailed("a reason is required to deny")
        now = self.clock.now()
        final: str | None = None
        with writing(self.engine) as conn:
            request = self._load(conn, request_id, lock=True)
            if request is None:
                raise NotFound(f"no access request '{request_id[:80]}'")
            if request.status is not Status.PENDING or now >= request.expires_at:
                state = "expired" if request.status is Status.PENDING else request.status.value
                raise Conflict(f"request '{request_id}' is {state}; it can no longer be answered")
            if not request.intact or (shown_hash is not None and shown_hash != request.asked_hash):
                raise Conflict(
                    f"request '{request_id}' does not match the hash '{(shown_hash or '')[:64]}' you "
                    "approved; show it again"
                )
            if not any(person.in_group(g) for g in request.eligible_groups):
                raise Forbidden(
                    f"'{person.username}' is not in the approver groups {list(request.eligible_groups)}"
                )
            if request.separation == "owner" and person.username.lower() == request.owner.lower():
                raise Forbidden("policy forbids the agent's owner from approving its own agent's request")
            if any(v.username == person.username for v in request.votes):
                raise Conflict(f"'{person.username}' has already answered request '{request_id}'")
            decision = "approve" if approve else "deny"
            conn.execute(
                insert(approval_votes).values(
                    request_id=request_id,
                    person_id=person.id,
                    username=person.username,
                    decision=decision,
                    reason=reason,
                    created_at=now,
                )
            )
            self.auditor.record_in(
                conn,
                event(
                    f"approval.{'approved' if approve else 'denied'}",
                    context,
                    subject=request.agent_id,
                    task_id=request.task_id,
                    outcome="permit" if approve else "deny",
                    reason=reason,
                    data={"request_id": request_id, "asked_hash": request.asked_hash},
                ),
            )
            approvals = 1 + sum(1 for v in request.votes if v.decision == "approve")
            if not approve:
                self.close(conn, request, Status.DENIED, reason, context)
                final = "denied"
            elif approvals >= request.approvals_required:
                approvers = [*(v.username for v in request.votes if v.decision == "approve"), person.username]
                self._approve(conn, request, granted_by=",".join(approvers), kind=GrantKind.APPROVAL)
                final = "approved"
        updated = self.get(request_id)
        if final is not None:
            self.notices.ping(updated)
        return updated

    def _approve(self, conn: Connection, request: AccessRequest, *, granted_by: str, kind: GrantKind) -> None:
        now = self.clock.now()
        expires = now + request.ttl
        grant_id = self.grants.insert(
            conn,
            kind=kind,
            agent_id=request.agent_id,
            request_id=request.id,
            asked=request.asked,
            granted_by=granted_by,
            expires_at=expires,
        )
        conn.execute(
            update(access_requests)
            .where(access_requests.c.id == request.id)
            .values(status=Status.APPROVED.value, decided_at=now, grant_id=grant_id, expires_at=expires)
        )
        self.auditor.record_in(
            conn,
            event(
                "access.approved" if kind is GrantKind.APPROVAL else "access.granted",
                RequestContext(),
                subject=request.agent_id,
                task_id=request.task_id,
                outcome="permit",
                data={
                    "request_id": request.id,
                    "grant_id": grant_id,
                    "asked_hash": request.asked_hash,
                    "approved_by": granted_by.split(","),
                    "expires_at": expires,
                },
            ),
        )

    def close(
        self,
        conn: Connection,
        request: AccessRequest,
        status: Status,
        reason: str | None,
        context: RequestContext,
    ) -> None:
        now = self.clock.now()
        conn.execute(
            update(access_requests)
            .where(access_requests.c.id == request.id)
            .values(status=status.value, decided_at=now, decision_reason=reason)
        )
        self.auditor.record_in(
            conn,
            event(
                f"access.{status.value}",
                context,
                subject=request.agent_id,
                task_id=request.task_id,
                outcome="deny",
                reason=reason,
                data={"request_id": request.id, "asked_hash": request.asked_hash},
            ),
        )
