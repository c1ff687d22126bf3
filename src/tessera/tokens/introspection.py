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

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.service import Auditor, RequestContext, event, record_revocations
from tessera.clock import Clock
from tessera.errors import ServiceUnavailable, UnauthorizedClient
from tessera.identity.agents import Agent
from tessera.identity.keys import PublicKey
from tessera.storage.database import writing
from tessera.tokens.access_tokens import AccessToken, verify_access_token
from tessera.tokens.jose import JwsError
from tessera.tokens.revocation import RevocationState, revoke_tokens
from tessera.tokens.signing_keys import KeyRing

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

    def revoke_token(self, token: str, caller: Caller, context: RequestContext = _SYSTEM) -> bool:
        """RFC 7009 §2.1-2.2: revoke if valid and the caller may; invalid tokens are a no-op."""
        try:
            verified = self._validator.verify(token, check_state=False)
        except JwsError:
            return False
        if not caller.admin and (caller.agent is None or caller.agent.id != verified.client_id):
            raise UnauthorizedClient("the token was not issued to this client")
        reason = "revoked via rfc 7009 endpoint"
        revoked = self.revoke(jti=verified.jti, reason=reason, context=context, agent=verified.client_id)
        return bool(revoked)

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
