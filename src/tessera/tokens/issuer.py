"""Minting and recording access tokens: the last step every grant shares.

Issuing commits, in one transaction, the single-use claims of the request (the
client assertion's and the DPoP proof's ``jti``) and the issued-token record;
only then is the token returned. A replayed ``jti`` therefore loses the race in
the database, on any replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, insert, select
from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.records import Actor, ActorType, AuditEvent
from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import (
    InvalidAuthorizationDetails,
    InvalidClient,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    ServiceUnavailable,
    UnauthorizedClient,
)
from tessera.identity.agents import Agent, LifecycleState
from tessera.ids import IdGenerator
from tessera.storage.audit import AuditHeadMissing
from tessera.storage.database import writing
from tessera.storage.group_commit import GroupCommit
from tessera.storage.single_use import AlreadyUsed, SqlSingleUseStore
from tessera.storage.tables import agents, issued_tokens, revoked_external_tokens, tasks
from tessera.tokens.access_tokens import mint_access_token
from tessera.tokens.authorization_details import task_id_of
from tessera.tokens.client_auth import SingleUse
from tessera.tokens.revocation import AgentStatus
from tessera.tokens.signing_keys import KeyRing

log = logging.getLogger(__name__)


class AuditWriteFailed(Exception):
    """The ``token.issued`` record could not be appended; the token must not be returned."""


def issued_event(auditor: Auditor, grant: TokenGrant, issued: IssuedToken) -> AuditEvent:
    """The ``token.issued`` record: who got which token, for which task, under which policy.

    For an exchanged token the record's ``delegation`` is the chain: the original
    subject, then every actor, earliest first (the last is the agent that got it).
    """
    recorded = event(
        "token.issued",
        RequestContext(Actor(ActorType.AGENT, grant.agent.id), ip=grant.client_ip),
        subject=grant.agent.id,
        task_id=issued.task_id,
        token_hash=auditor.token_hash(issued.jti),
        outcome="permit" if issued.policy_version else None,
        policies=issued.policies,
        policy_version=issued.policy_version,
        decision_id=",".join(issued.decision_ids) or None,
        data={
            "grant_type": grant.grant_type,
            "scope": issued.scope,
            "aud": list(issued.audience),
            "expires_in": issued.expires_in,
            "token_type": issued.token_type,
            "client_auth": grant.client_method,
            **delegation_data(grant),
            **federation_data(grant),
        },
    )
    act = grant.extra_claims.get("act")
    if not isinstance(act, dict):
        return recorded
    actors: list[str] = []
    while isinstance(act, dict):
        actors.append(str(act.get("sub", "")))
        act = act.get("act")
    return replace(recorded, delegation=(grant.subject or "", *reversed(actors)))


def federation_data(grant: TokenGrant) -> dict[str, Any]:
    """For jwt-bearer tokens (RFC 7523): the external identity the token was traded for."""
    federation = grant.extra_claims.get("federation")
    if not isinstance(federation, dict):
        return {}
    return {"federation": {k: federation.get(k) for k in ("iss", "sub", "issuer_id")}}


def delegation_data(grant: TokenGrant) -> dict[str, Any]:
    """For exchanged tokens (RFC 8693): the chain's subject, its ``act`` and depth, the parent."""
    act = grant.extra_claims.get("act")
    if act is None:
        return {}
    depth, inner = 0, act
    while isinstance(inner, dict):
        depth, inner = depth + 1, inner.get("act")
    return {"sub": grant.subject, "act": act, "delegation_depth": depth, "parent_jti": grant.parent_jti}


_INSERT_ISSUED = insert(issued_tokens)  # built once; rows are passed as parameters
# FOR SHARE on PostgreSQL (nothing on SQLite, whose writers are serialised): a suspension
# either waits for this token and then revokes it, or commits first and is seen here.
_AGENT_STATE = (
    select(agents.c.state, agents.c.expires_at)
    .where(agents.c.id == bindparam("agent_id"))
    .with_for_update(read=True)
)

_PARENT_STATE = (
    select(issued_tokens.c.revoked_at)
    .where(issued_tokens.c.jti == bindparam("jti"))
    .with_for_update(read=True)
)

_TASK_STATE = (
    select(tasks.c.state, tasks.c.deadline, tasks.c.budget, tasks.c.used)
    .where(tasks.c.id == bindparam("task_id"))
    .with_for_update(read=True)
)
_EXTERNAL_REVOKED = select(revoked_external_tokens.c.token_id).where(
    revoked_external_tokens.c.token_id == bindparam("token_id")
)


def check_parent_live(conn: Connection, grant: TokenGrant) -> None:
    """An exchanged token is recorded only while the token it came from is unrevoked.

    A revocation of a local parent either waits for this row (and then cascades to
    it) or committed first and is seen here: no child outlives its parent.
    """
    if grant.parent_jti is None:
        return
    if grant.parent_local:
        parent = conn.execute(_PARENT_STATE, {"jti": grant.parent_jti}).first()
        gone = parent is None or parent.revoked_at is not None
    else:
        gone = conn.execute(_EXTERNAL_REVOKED, {"token_id": grant.parent_jti}).first() is not None
    if gone:
        raise InvalidGrant("subject token has been revoked")


def check_task_open(conn: Connection, grant: TokenGrant, now: float) -> None:
    """A token for a registered task is recorded only while the task is open (closing locks it)."""
    if not grant.task_registered or grant.task_id is None:
        return
    task = conn.execute(_TASK_STATE, {"task_id": grant.task_id}).first()
    if task is None or task.state != "open" or task.deadline <= now:
        raise InvalidAuthorizationDetails(f"task '{grant.task_id[:128]}' is no longer open")
    if task.budget is not None and task.used >= task.budget:
        raise InvalidAuthorizationDetails(f"task '{grant.task_id[:128]}' has used its budget")


class IssuanceGuard(Protocol):
    """Continuous verification's say at issuance (``tessera.response.guard``)."""

    def admit(self, grant: TokenGrant) -> TokenGrant:
        """Before minting, from memory: raise to refuse, or return the grant (its ttl capped)."""

    def admit_in(self, conn: Connection, grant: TokenGrant) -> None:
        """Inside the issuing transaction: raise to refuse (the database's view of kill rules)."""


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a grant decided to issue."""

    agent: Agent
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    ttl: int
    cnf_jkt: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    client_single_use: SingleUse | None = None
    dpop_single_use: SingleUse | None = None
    #: The ``jti`` of a jwt-bearer assertion (RFC 7523 §3 item 7), claimed with the token.
    assertion_single_use: SingleUse | None = None
    extra_claims: dict[str, Any] = field(default_factory=dict)
    policy_version: str | None = None
    policies: tuple[str, ...] = ()
    decision_ids: tuple[str, ...] = ()
    #: For the ``token.issued`` record: how the client authenticated, and from where.
    grant_type: str = "client_credentials"
    client_method: str | None = None
    client_ip: str | None = None
    #: Delegation (RFC 8693): the chain's original subject (defaults to the agent) and
    #: the token this one was exchanged from.
    subject: str | None = None
    parent_jti: str | None = None
    #: Whether ``parent_jti`` is a token of this server (checked not revoked when recording).
    parent_local: bool = False
    #: RFC 8693 §2.2.1 ``issued_token_type``, answered by token exchanges.
    issued_token_type: str | None = None
    #: The ``agent_task`` names a registered task (``tessera.access``): re-checked when recording.
    task_registered: bool = False
    #: A single-use value the grant redeems (a CIBA ``auth_req_id``), claimed with the token.
    redemption: SingleUse | None = None

    @property
    def task_id(self) -> str | None:
        return task_id_of(self.authorization_details)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    jti: str
    authorization_details: tuple[dict[str, Any], ...] = ()
    audience: tuple[str, ...] = ()
    policy_version: str | None = None
    policies: tuple[str, ...] = ()
    decision_ids: tuple[str, ...] = ()
    issued_token_type: str | None = None

    @property
    def task_id(self) -> str | None:
        return task_id_of(self.authorization_details)

    def response(self) -> dict[str, Any]:
        """RFC 6749 §5.1, RFC 9449 §5 (``token_type``), RFC 9396 §7."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.authorization_details:
            body["authorization_details"] = list(self.authorization_details)
        if self.issued_token_type:
            body["issued_token_type"] = self.issued_token_type
        return body


class TokenIssuer:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        *,
        issuer: str,
        keyring: Callable[[], KeyRing],
        max_token_bytes: int | None = None,
        auditor: Auditor | None = None,
        guard: IssuanceGuard | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._issuer = issuer
        self._keyring = keyring
        self._max_token_bytes = max_token_bytes
        self._single_use = SqlSingleUseStore()
        self._commits = GroupCommit(engine)
        self._auditor = auditor
        self._guard = guard

    def claim_single_use(self, single_use: SingleUse) -> None:
        """Consume a client assertion used outside the token endpoint (introspection, revocation)."""
        try:
            with writing(self._engine) as conn:
                self._single_use.claim(conn, single_use.key, single_use.expires_at)
        except AlreadyUsed as exc:
            raise InvalidClient("client assertion jti has already been used") from exc
        except SQLAlchemyError as exc:
            raise ServiceUnavailable("token store is unavailable") from exc

    def _claims(self, grant: TokenGrant, jti: str, now: float) -> dict[str, Any]:
        """RFC 9068 §2.2 claims, with ``cnf`` (RFC 9449 §6.1) and ``authorization_details`` (RFC 9396)."""
        iat = int(now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": grant.agent.id,
            "aud": grant.audience[0] if len(grant.audience) == 1 else list(grant.audience),
            "client_id": grant.agent.id,
            "iat": iat,
            "exp": iat + grant.ttl,
            "jti": jti,
            "scope": " ".join(grant.scopes),
        }
        if grant.cnf_jkt:
            claims["cnf"] = {"jkt": grant.cnf_jkt}
        if grant.authorization_details:
            claims["authorization_details"] = list(grant.authorization_details)
        claims.update(grant.extra_claims)
        return claims

    def _claim_single_uses(self, conn: Connection, grant: TokenGrant) -> None:
        """The request's single-use values (RFC 7523 §3, RFC 9449 §11.1, a CIBA ``auth_req_id``),
        claimed in the token's transaction: a replay loses here."""
        claims = (
            (grant.client_single_use, InvalidClient, "client assertion jti has already been used"),
            (grant.dpop_single_use, InvalidDPoPProof, "dpop proof jti has already been used"),
            (grant.assertion_single_use, InvalidGrant, "assertion jti has already been used"),
            (grant.redemption, InvalidGrant, "auth_req_id has already been redeemed"),
        )
        for single_use, error, message in claims:
            if single_use is not None:
                try:
                    self._single_use.claim(conn, single_use.key, single_use.expires_at)
                except AlreadyUsed as exc:
                    raise error(message) from exc

    def issue(self, grant: TokenGrant) -> IssuedToken:
        now = self._clock.now()
        if self._guard is not None:
            grant = self._guard.admit(grant)
        key = self._keyring().signing_key(now)
        if key is None:
            raise ServiceUnavailable("no signing key is active; the server is starting or rotating keys")
        jti = self._ids.new("at")
        claims = self._claims(grant, jti, now)
        exp = claims["exp"]
        scope = claims["scope"]
        token = mint_access_token(key.private_key, key.kid, key.alg, claims)
        if self._max_token_bytes is not None and len(token) > self._max_token_bytes:
            # Verifiers refuse tokens over this size: issuing one would hand out a dud.
            error = InvalidAuthorizationDetails if grant.authorization_details else InvalidRequest
            raise error(
                f"the token would be {len(token)} bytes, over the {self._max_token_bytes}-byte limit; "
                "ask for fewer resources or a shorter task description"
            )
        row = {
            "jti": jti,
            "agent_id": grant.agent.id,
            "task_id": grant.task_id,
            "kid": key.kid,
            "scope": scope,
            "audience": list(grant.audience),
            "cnf_jkt": grant.cnf_jkt,
            "issued_at": now,
            "expires_at": float(exp),
            "subject": grant.subject or grant.agent.id,
            "parent_jti": grant.parent_jti,
        }

        def record(conn: Connection) -> None:
            # The agent was checked when the request was authenticated; it may have been
            # suspended since. Re-check where the token is recorded, or a later resume
            # would bring this token to life (revocation only sees recorded tokens).
            state = conn.execute(_AGENT_STATE, {"agent_id": grant.agent.id}).first()
            if state is None or not AgentStatus(LifecycleState(state.state), state.expires_at).usable_at(now):
                current = "gone" if state is None else state.state
                raise UnauthorizedClient(f"agent '{grant.agent.id}' is {current}; no tokens are issued to it")
            if self._guard is not None:
                self._guard.admit_in(conn, grant)
            check_parent_live(conn, grant)
            check_task_open(conn, grant, now)
            self._claim_single_uses(conn, grant)
            conn.execute(_INSERT_ISSUED, row)
            if self._auditor is not None:
                # The record commits with the token, in the same group commit: no token
                # without its record, and no second fsync per token.
                try:
                    self._auditor.record_in(conn, issued_event(self._auditor, grant, issued))
                except (SQLAlchemyError, AuditHeadMissing) as exc:
                    raise AuditWriteFailed(str(exc)) from exc

        issued = IssuedToken(
            access_token=token,
            token_type="DPoP" if grant.cnf_jkt else "Bearer",
            expires_in=grant.ttl,
            scope=scope,
            jti=jti,
            authorization_details=grant.authorization_details,
            audience=grant.audience,
            policy_version=grant.policy_version,
            policies=grant.policies,
            decision_ids=grant.decision_ids,
            issued_token_type=grant.issued_token_type,
        )
        try:
            # Concurrent requests share one commit (one fsync); each still gets its own outcome.
            self._commits.run(record)
        except (InvalidClient, InvalidDPoPProof, InvalidGrant):
            raise
        except AuditWriteFailed as exc:
            log.error("audit append failed; token refused: %s", exc)
            raise ServiceUnavailable("audit log cannot be written; no token was issued") from exc
        except SQLAlchemyError as exc:
            log.exception("token store write failed")
            raise ServiceUnavailable("token store is unavailable; no token was issued") from exc
        return issued
