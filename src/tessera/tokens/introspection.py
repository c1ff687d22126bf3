"""Token introspection (RFC 7662) and revocation (RFC 7009).

Who may introspect (RFC 7662 §4 leaves it to the server): the admin credential,
the client the token was issued to, and resource servers named in its ``aud``
(an agent whose id, or one of whose ``resource_uris``, is in ``aud``). Anyone
else, and any token that is revoked, expired, forged, unknown, of a retired
key or of an agent that is no longer active, gets exactly ``{"active": false}``.

Who may revoke: the client the token was issued to, and the admin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.service import Auditor, RequestContext, event, record_revocations
from tessera.clock import Clock
from tessera.errors import ServiceUnavailable, TesseraError, UnauthorizedClient
from tessera.identity.agents import Agent
from tessera.identity.keys import PublicKey
from tessera.policy.context import delegation_from_claims
from tessera.storage.database import reading, writing
from tessera.storage.tables import issued_tokens
from tessera.tokens.access_tokens import AccessToken, verify_access_token
from tessera.tokens.delegation import external_token_id, verify_token
from tessera.tokens.jose import JwsError
from tessera.tokens.revocation import RevocationState, revoke_external_token, revoke_tokens
from tessera.tokens.signing_keys import KeyRing
from tessera.tokens.subject_tokens import SubjectTokenVerifier

log = logging.getLogger(__name__)
_SYSTEM = RequestContext()
INACTIVE: dict[str, Any] = {"active": False}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling introspection or revocation: the admin, or an authenticated agent."""

    admin: bool = False
    agent: Agent | None = None
    context: RequestContext = _SYSTEM


class TokenValidator:
    """Full server-side validation: signature and claims, then revocation and agent state."""

    def __init__(
        self,
        *,
        issuer: str,
        clock: Clock,
        keyring: Callable[[], KeyRing],
        revocation: RevocationState,
        leeway: float,
        max_bytes: int,
        max_lifetime: float,
        stopped: Callable[[AccessToken], str | None] | None = None,
    ) -> None:
        self._issuer = issuer
        #: The kill switch's check (``tessera.response``): a rule id if the token is stopped.
        self.stopped = stopped
        self._clock = clock
        self._keyring = keyring
        self._revocation = revocation
        self._leeway = leeway
        self._max_bytes = max_bytes
        self._max_lifetime = max_lifetime

    def _lookup(self, now: float) -> Callable[[str], tuple[PublicKey, tuple[str, ...]] | None]:
        ring = self._keyring()

        def lookup(kid: str) -> tuple[PublicKey, tuple[str, ...]] | None:
            key = ring.verification_key(kid, now)
            return (key.public_key, (key.alg,)) if key else None

        return lookup

    def verify(self, token: str, *, check_state: bool = True) -> AccessToken:
        """Raise :class:`JwsError` unless the token is valid and live right now."""
        now = self._clock.now()
        verified = verify_access_token(
            token,
            key_lookup=self._lookup(now),
            issuer=self._issuer,
            now=now,
            leeway=self._leeway,
            max_bytes=self._max_bytes,
            max_lifetime=self._max_lifetime,
        )
        if check_state:
            if self._revocation.is_jti_revoked(verified.jti):
                raise JwsError("token has been revoked")
            if not self._revocation.agent_usable(verified.client_id, now):
                raise JwsError("the token's agent is not active")
            rule_id = self.stopped(verified) if self.stopped is not None else None
            if rule_id is not None:
                raise JwsError(f"the token is stopped by kill switch '{rule_id}'")
        return verified


def may_see(caller: Caller, token: AccessToken) -> bool:
    if caller.admin:
        return True
    agent = caller.agent
    if agent is None:
        return False
    if agent.id == token.client_id or agent.id in token.audience:
        return True
    return any(uri in token.audience for uri in agent.resource_uris)


def introspection_response(token: AccessToken) -> dict[str, Any]:
    """RFC 7662 §2.2 members, plus ``cnf`` (RFC 9449 §6.2) and ``authorization_details``."""
    body: dict[str, Any] = {
        "active": True,
        "scope": " ".join(token.scopes),
        "client_id": token.client_id,
        "sub": token.subject,
        "aud": list(token.audience),
        "iss": token.issuer,
        "exp": int(token.expires_at),
        "iat": int(token.issued_at),
        "jti": token.jti,
        "token_type": token.token_type,
    }
    if token.cnf_jkt:
        body["cnf"] = {"jkt": token.cnf_jkt}
    if token.authorization_details:
        body["authorization_details"] = list(token.authorization_details)
    act = token.claims.get("act")
    if isinstance(act, dict):
        # RFC 8693 §4.1: the chain as the token nests it (outermost = current actor), plus
        # the same chain flattened, earliest actor first, as policy sees it.
        chain = delegation_from_claims(token.claims)
        body["act"] = act
        body["delegation"] = chain.as_context()
    body["delegation_depth"] = delegation_from_claims(token.claims).depth
    return body


class Introspector:
    def __init__(self, validator: TokenValidator, auditor: Auditor | None = None) -> None:
        self._validator = validator
        self._auditor = auditor

    def introspect(
        self, token: str, caller: Caller, context: RequestContext = _SYSTEM
    ) -> tuple[dict[str, Any], AccessToken | None]:
        verified: AccessToken | None
        try:
            verified = self._validator.verify(token)
        except JwsError:
            verified = None
        if verified is not None and not may_see(caller, verified):
            verified = None
        if self._auditor is not None:
            self._auditor.record_async(
                event(
                    "token.introspected",
                    context,
                    subject=verified.client_id if verified else None,
                    task_id=verified.task_id if verified else None,
                    token_hash=self._auditor.token_hash(verified.jti) if verified else None,
                    data={"active": verified is not None},
                )
            )
        if verified is None:
            return dict(INACTIVE), None
        return introspection_response(verified), verified


class Revoker:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        validator: TokenValidator,
        revocation: RevocationState,
        auditor: Auditor | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._validator = validator
        self._revocation = revocation
        self._auditor = auditor
        #: Verifiers of trusted external issuers (shared with the token exchange grant).
        self.subject_verifiers: list[SubjectTokenVerifier] = []

    def revoke_token(self, token: str, caller: Caller, context: RequestContext = _SYSTEM) -> bool:
        """RFC 7009 §2.1-2.2: revoke if valid and the caller may; invalid tokens are a no-op.

        Every token exchanged from it is revoked too. A token of a trusted external
        issuer (a person's token that was a ``subject_token``) is accepted when it
        verifies through one of ``subject_verifiers``: it cannot be exchanged again and
        every token derived from it is revoked.
        """
        try:
            verified = self._validator.verify(token, check_state=False)
        except JwsError:
            return self._revoke_external(token, caller, context)
        if not caller.admin and (caller.agent is None or caller.agent.id != verified.client_id):
            raise UnauthorizedClient("the token was not issued to this client")
        reason = "revoked via rfc 7009 endpoint"
        revoked = self.revoke(jti=verified.jti, reason=reason, context=context, agent=verified.client_id)
        return bool(revoked)

    def _revoke_external(self, token: str, caller: Caller, context: RequestContext) -> bool:
        now = self._clock.now()
        external = self._verify_external(token, now)
        if external is None:
            return False
        token_id, expires_at = external
        if not caller.admin and (caller.agent is None or not self._holds_derived(caller.agent.id, token_id)):
            raise UnauthorizedClient("no token derived from this subject token was issued to this client")
        reason = "subject token revoked via rfc 7009 endpoint"
        try:
            with writing(self._engine) as conn:
                revoked = revoke_external_token(
                    conn, token_id=token_id, expires_at=expires_at, now=now, reason=reason
                )
                if self._auditor is not None:
                    record_revocations(self._auditor, conn, context, revoked, agent_id=None, reason=reason)
        except SQLAlchemyError as exc:
            log.exception("revocation failed")
            raise ServiceUnavailable("revocation could not be stored; the token is still live") from exc
        self._revocation.mark_revoked(revoked)
        return True

    def _verify_external(self, token: str, now: float) -> tuple[str, float] | None:
        try:
            verified = verify_token(token, self.subject_verifiers, now)
        except TesseraError:
            return None
        if verified.local:
            return None
        return external_token_id(verified.issuer, verified, token), verified.expires_at

    def _holds_derived(self, agent_id: str, token_id: str) -> bool:
        with reading(self._engine) as conn:
            row = conn.execute(
                select(issued_tokens.c.jti)
                .where(issued_tokens.c.parent_jti == token_id, issued_tokens.c.agent_id == agent_id)
                .limit(1)
            ).first()
        return row is not None

    def revoke(
        self,
        *,
        reason: str,
        jti: str | None = None,
        agent_id: str | None = None,
        task_id: str | None = None,
        context: RequestContext = _SYSTEM,
        agent: str | None = None,
    ) -> dict[str, float]:
        """Revoke by jti, agent or task; durable (with its audit records) before it returns."""
        now = self._clock.now()
        try:
            with writing(self._engine) as conn:
                revoked = revoke_tokens(
                    conn, now=now, reason=reason, jti=jti, agent_id=agent_id, task_id=task_id
                )
                if self._auditor is not None:
                    record_revocations(
                        self._auditor, conn, context, revoked, agent_id=agent or agent_id, reason=reason
                    )
        except SQLAlchemyError as exc:
            log.exception("revocation failed")
            raise ServiceUnavailable("revocation could not be stored; the token is still live") from exc
        self._revocation.mark_revoked(revoked)
        return revoked
