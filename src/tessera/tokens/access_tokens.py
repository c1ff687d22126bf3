"""JWT access tokens (RFC 9068): minting on the server, verification everywhere.

Header: ``{"alg": "ES256", "typ": "at+jwt", "kid": …}`` (RFC 9068 §2.1).
Claims: ``iss sub aud client_id iat exp jti scope`` (§2.2), plus
``cnf.jkt`` when DPoP-bound (RFC 9449 §6.1) and ``authorization_details``
when task-bound (RFC 9396 §9.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt

from tessera.identity.keys import PublicKey
from tessera.tokens.authorization_details import task_id_of
from tessera.tokens.jose import (
    JwsError,
    audiences,
    check_lifetime,
    parse_compact,
    string_claim,
    verify_signature,
)

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")

KeyLookup = Callable[[str], tuple[PublicKey, tuple[str, ...]] | None]


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified access token's claims, plus the raw claim set."""

    jti: str
    issuer: str
    subject: str
    client_id: str
    audience: tuple[str, ...]
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    kid: str
    cnf_jkt: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    claims: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def task_id(self) -> str | None:
        return task_id_of(self.authorization_details)

    @property
    def token_type(self) -> str:
        return "DPoP" if self.cnf_jkt else "Bearer"


def mint_access_token(private_key: Any, kid: str, alg: str, claims: dict[str, Any]) -> str:
    """Sign ``claims`` as an RFC 9068 access token."""
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    return jwt.encode(header, claims, private_key, algorithms=[alg])


def verify_access_token(
    token: str,
    *,
    key_lookup: KeyLookup,
    issuer: str,
    now: float,
    leeway: float,
    max_bytes: int,
    max_lifetime: float,
    audience: str | None = None,
) -> AccessToken:
    """Validate per RFC 9068 §4: typ, a configured key for ``kid``, signature, iss, aud, times.

    Raises :class:`JwsError` with a one-line reason on any failure.
    """
    jws = parse_compact(token, max_bytes=max_bytes)
    if jws.typ not in ACCESS_TOKEN_TYPES:
        raise JwsError(f"typ '{jws.typ}' is not at+jwt")
    kid = jws.kid
    if kid is None:
        raise JwsError("access token has no kid")
    found = key_lookup(kid)
    if found is None:
        raise JwsError(f"unknown or retired signing key '{kid[:64]}'")
    key, algs = found
    verify_signature(jws, key, algs)
    claims = jws.claims
    if claims.get("iss") != issuer:
        raise JwsError("wrong issuer")
    auds = audiences(claims)
    if audience is not None and audience not in auds:
        raise JwsError("token is not meant for this audience")
    exp, iat = check_lifetime(claims, now=now, leeway=leeway, max_lifetime=max_lifetime)
    if iat is None:
        raise JwsError("missing claim 'iat'")
    subject = string_claim(claims, "sub")
    client_id = string_claim(claims, "client_id")
    jti = string_claim(claims, "jti", max_len=128)
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise JwsError("claim 'scope' must be a string")
    cnf = claims.get("cnf")
    jkt: str | None = None
    if cnf is not None:
        if not isinstance(cnf, dict) or not isinstance(cnf.get("jkt"), str):
            raise JwsError("claim 'cnf' must hold a 'jkt' string")
        jkt = cnf["jkt"]
    details = claims.get("authorization_details", [])
    if not isinstance(details, list) or not all(isinstance(d, dict) for d in details):
        raise JwsError("claim 'authorization_details' must be an array of objects")
    return AccessToken(
        jti=jti,
        issuer=issuer,
        subject=subject,
        client_id=client_id,
        audience=tuple(auds),
        scopes=tuple(scope.split()),
        issued_at=iat,
        expires_at=exp,
        kid=kid,
        cnf_jkt=jkt,
        authorization_details=tuple(details),
        claims=claims,
    )
