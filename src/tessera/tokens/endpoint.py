"""The token endpoint (RFC 6749 §3.2): authenticate the client, check DPoP, dispatch the grant.

Grant handlers are registered here, in one explicit list.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    ServiceUnavailable,
    TesseraError,
    UnsupportedGrantType,
    UseDPoPNonce,
)
from tessera.federation.keys import FEDERATION_ALGORITHMS
from tessera.storage.single_use import single_use_key
from tessera.tokens.client_auth import (
    MAX_ASSERTION_BYTES,
    AuthenticatedClient,
    ClientAuthenticator,
    SingleUse,
)
from tessera.tokens.dpop import NonceIssuer, verify_dpop_proof
from tessera.tokens.grants import ClientAuthenticationOptional, GrantHandler, ProofOfPossession
from tessera.tokens.issuer import IssuedToken
from tessera.tokens.jose import JwsError, parse_compact
from tessera.tokens.requests import TokenRequest


class TokenEndpoint:
    def __init__(
        self,
        *,
        clock: Clock,
        authenticator: ClientAuthenticator,
        grants: list[GrantHandler | ClientAuthenticationOptional],
        token_endpoint_url: str,
        dpop_max_age: float,
        leeway: float,
        nonces: NonceIssuer | None,
        auditor: Auditor | None = None,
    ) -> None:
        self._clock = clock
        self._authenticator = authenticator
        self._grants = grants
        self._url = token_endpoint_url
        self._dpop_max_age = dpop_max_age
        self._leeway = leeway
        self._nonces = nonces
        self._auditor = auditor

    @property
    def grant_types(self) -> list[str]:
        return [grant.grant_type for grant in self._grants]

    def fresh_nonce(self) -> str | None:
        return self._nonces.current(self._clock.now()) if self._nonces else None

    def handle(self, request: TokenRequest) -> IssuedToken:
        """Issue a token, or raise the wire error; either way the outcome is audited.

        The ``token.issued`` record commits with the token itself (see
        :class:`~tessera.tokens.issuer.TokenIssuer`); if the audit log cannot be
        written the request fails with 503 and the token never leaves the server.
        Refusals are recorded as ``token.denied`` without waiting.
        """
        try:
            issued, _client = self._handle(request)
        except TesseraError as exc:
            # A CIBA poll that must wait (OpenID CIBA Core 1.0 §11) is not a refusal.
            if self._auditor is not None and exc.error not in ("authorization_pending", "slow_down"):
                claimed = request.params.get("client_id") or claimed_client(request.params)
                self._auditor.record_async(
                    event(
                        "token.denied",
                        RequestContext(Actor(ActorType.AGENT, claimed), ip=request.client_ip),
                        subject=claimed,
                        reason=exc.description,
                        data={"error": exc.error, "grant_type": (request.grant_type or "")[:80]},
                    )
                )
            raise
        return issued

    def _handle(self, request: TokenRequest) -> tuple[IssuedToken, AuthenticatedClient | None]:
        if request.method != "POST":
            raise InvalidRequest("the token endpoint accepts only POST")
        if not request.grant_type:
            raise InvalidRequest("missing grant_type")
        handler = next((g for g in self._grants if g.can_handle(request)), None)
        if handler is None:
            raise UnsupportedGrantType(f"unsupported grant_type '{request.grant_type[:60]}'")
        now = self._clock.now()
        if (
            isinstance(handler, ClientAuthenticationOptional)
            and handler.client_authentication_optional
            and not presents_client_credentials(request)
        ):
            pop = self._proof_of_possession(request, now)
            return handler.handle(request, None, pop), None
        try:
            client = self._authenticator.authenticate(request.params, request.authorization, now)
        except SQLAlchemyError as exc:
            raise ServiceUnavailable("agent registry is unavailable") from exc
        pop = self._proof_of_possession(request, now)
        return handler.handle(request, client, pop), client

    def _proof_of_possession(self, request: TokenRequest, now: float) -> ProofOfPossession | None:
        """RFC 9449 §5: verify the DPoP header, if any, and require a server nonce if configured."""
        if request.dpop_proof is None:
            return None
        try:
            proof = verify_dpop_proof(
                request.dpop_proof,
                method=request.method,
                url=self._url,
                now=now,
                max_age=self._dpop_max_age,
                leeway=self._leeway,
            )
        except JwsError as exc:
            raise InvalidDPoPProof(f"invalid dpop proof: {exc}") from exc
        if self._nonces is not None and not self._nonces.is_valid(proof.nonce, now):
            raise UseDPoPNonce(
                "authorization server requires a dpop nonce",
                headers={"DPoP-Nonce": self._nonces.current(now)},
            )
        expires = proof.iat + self._dpop_max_age + 2 * self._leeway
        return ProofOfPossession(
            jkt=proof.jkt, single_use=SingleUse(single_use_key("dpop", proof.jkt, proof.jti), expires)
        )


def presents_client_credentials(request: TokenRequest) -> bool:
    """Whether the request carries any client authentication (RFC 6749 §2.3, RFC 7523 §2.2)."""
    params = request.params
    basic = request.authorization is not None and request.authorization[:6].lower() == "basic "
    return basic or any(
        name in params for name in ("client_assertion", "client_assertion_type", "client_secret")
    )


def claimed_client(params: dict[str, str]) -> str | None:
    """The client id an assertion *claims* (its unverified ``sub``), to name refused requests."""
    assertion = params.get("client_assertion")
    if not assertion:
        return claimed_external_identity(params.get("assertion"))
    try:
        sub = parse_compact(assertion, max_bytes=MAX_ASSERTION_BYTES).claims.get("sub")
    except JwsError:
        return None
    return sub[:64] if isinstance(sub, str) else None


def claimed_external_identity(assertion: str | None) -> str | None:
    """``iss#sub`` a jwt-bearer assertion (RFC 7523 §2.1) *claims*, to name refused requests."""
    if not assertion:
        return None
    try:
        claims = parse_compact(assertion, max_bytes=16 * 1024, algorithms=FEDERATION_ALGORITHMS).claims
    except JwsError:
        return None
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str):
        return None
    return f"{iss}#{sub}"[:200]
