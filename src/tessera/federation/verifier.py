"""Verifying a JWT from a trusted issuer (RFC 7523 §3, RFC 7519 §7.2), strictly.

Used for ``jwt-bearer`` assertions (``tokens/grants/jwt_bearer.py``) and, through
the :class:`~tessera.tokens.subject_tokens.SubjectTokenVerifier` protocol, for
``subject_token``/``actor_token`` in a token exchange (RFC 8693 §2.1). The checks,
in order:

1. size bound, then a structural parse: ``alg`` among the federation algorithms
   (never ``none`` or HMAC), no ``crit``, no ``b64``; ``jku``/``x5u``/``jwk``/``x5c``
   are never used to find a key (RFC 8725 §3.10); ``typ`` absent, ``JWT`` or
   ``at+jwt`` (anything else is another kind of token, RFC 8725 §3.11);
2. ``iss`` names a registered trusted issuer, exactly;
3. the key the ``kid`` selects from that issuer's JWKS (refreshed once, rate
   limited, on an unknown kid) and an ``alg`` that key and the issuer allow;
4. ``exp`` required, ``nbf``/``iat`` with bounded leeway, and ``exp - iat`` at most
   the issuer's ``max_token_lifetime``;
5. ``aud`` names one of the issuer's accepted audiences (RFC 7523 §3 item 3);
6. every required claim, then the subject and the attribute mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera.errors import InvalidGrant
from tessera.federation.claims import scalar_text
from tessera.federation.issuers import TrustedIssuer
from tessera.federation.jwks import JwksCache, JwksUnavailable
from tessera.federation.keys import FEDERATION_ALGORITHMS, select_key, verify_with
from tessera.federation.service import TrustedIssuerService
from tessera.tokens.jose import JwsError, audiences, check_lifetime, parse_compact
from tessera.tokens.subject_tokens import VerifiedSubjectToken

MAX_EXTERNAL_JWT_BYTES = 16 * 1024
#: ``typ`` values of a token that may stand for an identity; ``dpop+jwt``, client
#: assertions, logout and security event tokens are other things and are refused.
ACCEPTED_TYPES = (None, "JWT", "jwt", "at+jwt", "application/at+jwt")


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    """A verified external token: who issued it, whom it names, and what it maps to."""

    issuer: TrustedIssuer
    subject: str
    claims: dict[str, Any]
    attributes: dict[str, str]
    expires_at: float
    issued_at: float | None
    token_id: str | None
    audience: tuple[str, ...]

    @property
    def region(self) -> str | None:
        return self.issuer.region


def _scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    """RFC 8693 §4.2 ``scope`` (space-separated), or the ``scp`` array some issuers use."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return tuple(dict.fromkeys(scope.split()))
    scp = claims.get("scp")
    if isinstance(scp, list):
        return tuple(dict.fromkeys(s for s in scp if isinstance(s, str)))
    if isinstance(scp, str):
        return tuple(dict.fromkeys(scp.split()))
    return ()


class FederatedTokenVerifier:
    """Verifies tokens of registered trusted issuers; also a ``SubjectTokenVerifier``."""

    def __init__(self, issuers: TrustedIssuerService, jwks: JwksCache, *, leeway: float) -> None:
        self._issuers = issuers
        self._jwks = jwks
        self._leeway = leeway

    def accepts(self, issuer: str) -> bool:
        return self._issuers.find(issuer) is not None

    def verify_identity(self, token: str, *, now: float, what: str = "assertion") -> FederatedIdentity:
        """Verify ``token`` as described in the module docstring; raise ``InvalidGrant`` saying why."""
        try:
            jws = parse_compact(token, max_bytes=MAX_EXTERNAL_JWT_BYTES, algorithms=FEDERATION_ALGORITHMS)
        except JwsError as exc:
            raise InvalidGrant(f"invalid {what}: {exc}") from exc
        if jws.typ not in ACCEPTED_TYPES:
            raise InvalidGrant(
                f"invalid {what}: typ '{jws.typ[:40] if jws.typ else ''}' is not a jwt identity token"
            )
        iss = jws.claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise InvalidGrant(f"invalid {what}: missing claim 'iss'")
        issuer = self._issuers.find(iss)
        if issuer is None:
            raise InvalidGrant(f"issuer '{iss[:120]}' is not trusted")
        if jws.alg not in issuer.algorithms:
            raise InvalidGrant(f"invalid {what}: alg '{jws.alg}' is not allowed for issuer '{iss[:120]}'")
        try:
            keys = self._jwks.keys(issuer, jws.kid)
        except JwksUnavailable as exc:
            raise InvalidGrant(f"jwks for issuer '{iss[:120]}' could not be fetched: {exc}") from exc
        key = select_key(keys, jws)
        if key is None:
            which = f"kid '{jws.kid[:64]}'" if jws.kid is not None else f"a single key for alg '{jws.alg}'"
            raise InvalidGrant(f"invalid {what}: issuer '{iss[:120]}' has no key matching {which}")
        try:
            verify_with(jws, key)
            exp, iat = check_lifetime(
                jws.claims, now=now, leeway=self._leeway, max_lifetime=issuer.max_token_lifetime
            )
            auds = audiences(jws.claims)
        except JwsError as exc:
            raise InvalidGrant(f"invalid {what}: {exc}") from exc
        if exp - now > issuer.max_token_lifetime + self._leeway:
            raise InvalidGrant(f"invalid {what}: lifetime exceeds {issuer.max_token_lifetime} seconds")
        if not set(auds) & set(issuer.audiences):
            raise InvalidGrant(
                f"invalid {what}: aud '{' '.join(auds)[:120]}' is not an accepted audience "
                f"of issuer '{iss[:120]}'"
            )
        return self._identity(issuer, jws.claims, exp, iat, tuple(auds), what)

    def _identity(  # noqa: PLR0917 - the verified parts of one token
        self,
        issuer: TrustedIssuer,
        claims: dict[str, Any],
        exp: float,
        iat: float | None,
        auds: tuple[str, ...],
        what: str,
    ) -> FederatedIdentity:
        for rule in issuer.required_claims:
            if not rule.satisfied_by(claims):
                expected = "" if rule.equals is None else f" = {rule.equals!r:.60}"
                raise InvalidGrant(
                    f"invalid {what}: required claim '{rule.path.text}'{expected} is not satisfied"
                )
        subject = scalar_text(issuer.subject_claim.read(claims))
        if not subject or len(subject) > 512 or any(ord(c) < 32 for c in subject):
            raise InvalidGrant(
                f"invalid {what}: subject claim '{issuer.subject_claim.text}' is missing or malformed"
            )
        try:
            attributes = issuer.map_attributes(claims)
        except ValueError as exc:
            raise InvalidGrant(f"invalid {what}: {exc}") from exc
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not 1 <= len(jti) <= 256):
            raise InvalidGrant(f"invalid {what}: claim 'jti' must be a string of 1-256 characters")
        return FederatedIdentity(issuer, subject, claims, attributes, exp, iat, jti, auds)

    # --- SubjectTokenVerifier (RFC 8693 §2.1) --------------------------------------------------

    def verify(self, token: str, *, now: float) -> VerifiedSubjectToken:
        identity = self.verify_identity(token, now=now, what="subject_token")
        cnf = identity.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        return VerifiedSubjectToken(
            issuer=identity.issuer.issuer,
            subject=identity.subject,
            expires_at=identity.expires_at,
            token_id=identity.token_id,
            scopes=_scopes(identity.claims),
            audience=identity.audience,
            claims=identity.claims,
            attributes=identity.attributes,
            region=identity.region,
            cnf_jkt=jkt if isinstance(jkt, str) else None,
            local=False,
        )
