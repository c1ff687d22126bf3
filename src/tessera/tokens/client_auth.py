"""Client authentication at the token, introspection and revocation endpoints.

``private_key_jwt`` (RFC 7523 §2.2 and §3, RFC 7521 §4.2) is the default and the
only method for agents unless ``client_secret`` is enabled for legacy tools
(RFC 6749 §2.3.1, ``client_secret_basic`` and ``client_secret_post``), whose
secrets are stored only as argon2 hashes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tessera.errors import InvalidClient, InvalidRequest
from tessera.identity.agents import Agent
from tessera.identity.keys import import_public_key_cached
from tessera.storage.single_use import single_use_key
from tessera.tokens.jose import (
    JwsError,
    audiences,
    check_lifetime,
    parse_compact,
    string_claim,
    verify_signature,
)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: ``typ`` values accepted on a client assertion: absent, the generic JWT, or the
#: explicit type of draft-ietf-oauth-rfc7523bis. Anything else (``at+jwt``,
#: ``dpop+jwt``…) is another kind of token and is refused.
ASSERTION_TYPES = (None, "JWT", "jwt", "client-authentication+jwt")
MAX_ASSERTION_BYTES = 8192

AgentLookup = Callable[[str], Agent | None]


@dataclass(frozen=True, slots=True)
class SingleUse:
    key: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    agent: Agent
    method: str
    single_use: SingleUse | None = None


class ClientAuthenticator:
    def __init__(
        self,
        *,
        issuer: str,
        lookup: AgentLookup,
        leeway: float,
        max_assertion_lifetime: float,
        allow_client_secret: bool,
        password_hasher: PasswordHasher | None = None,
    ) -> None:
        self._issuer = issuer
        self._lookup = lookup
        self._leeway = leeway
        self._max_lifetime = max_assertion_lifetime
        self._allow_secret = allow_client_secret
        self._hasher = password_hasher or PasswordHasher()

    def authenticate(
        self, form: Mapping[str, str], authorization: str | None, now: float
    ) -> AuthenticatedClient:
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        basic = authorization is not None and authorization[:6].lower() == "basic "
        methods = sum([assertion is not None or assertion_type is not None, basic, "client_secret" in form])
        if methods > 1:
            raise InvalidRequest("more than one client authentication method was used")
        if assertion is not None or assertion_type is not None:
            if assertion_type != CLIENT_ASSERTION_TYPE:
                raise InvalidClient(f"unsupported client_assertion_type '{(assertion_type or '')[:80]}'")
            if not assertion:
                raise InvalidRequest("missing client_assertion")
            return self._private_key_jwt(assertion, form.get("client_id"), now)
        if basic:
            assert authorization is not None  # noqa: S101 - checked by basic
            client_id, secret = _parse_basic(authorization)
            return self._client_secret(client_id, secret, "client_secret_basic", now)
        if "client_secret" in form:
            return self._client_secret(
                form.get("client_id", ""), form["client_secret"], "client_secret_post", now
            )
        raise InvalidClient("client authentication required (private_key_jwt)")

    def _private_key_jwt(self, assertion: str, client_id: str | None, now: float) -> AuthenticatedClient:
        try:
            jws = parse_compact(assertion, max_bytes=MAX_ASSERTION_BYTES)
            if jws.typ not in ASSERTION_TYPES:
                raise JwsError(f"typ '{jws.typ}' is not a client assertion")
            iss = string_claim(jws.claims, "iss", max_len=64)
            sub = string_claim(jws.claims, "sub", max_len=64)
        except JwsError as exc:
            raise InvalidClient(f"invalid client assertion: {exc}") from exc
        if iss != sub:
            raise InvalidClient("client assertion iss and sub must both be the client id")
        if client_id is not None and client_id != sub:
            raise InvalidClient("client_id does not match the client assertion")
        agent = self._lookup(sub)
        if agent is None:
            raise InvalidClient(f"unknown client '{sub}'")
        keys = agent.usable_keys(now)
        if jws.kid is not None:
            key = agent.key(jws.kid, now)
            if key is None:
                raise InvalidClient(f"client '{sub}' has no usable key '{jws.kid[:64]}'")
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise InvalidClient("client assertion has no kid and the client has several keys")
        try:
            public, _ = import_public_key_cached(key.jwk)
            algs = ("EdDSA", "Ed25519") if key.jwk.get("kty") == "OKP" else (key.alg,)
            verify_signature(jws, public, algs)
            auds = audiences(jws.claims)
            exp, _ = check_lifetime(jws.claims, now=now, leeway=self._leeway, max_lifetime=self._max_lifetime)
            jti = string_claim(jws.claims, "jti", max_len=256)
        except JwsError as exc:
            raise InvalidClient(f"invalid client assertion: {exc}") from exc
        if exp - now > self._max_lifetime + self._leeway:
            raise InvalidClient(f"client assertion lifetime exceeds {int(self._max_lifetime)} seconds")
        if auds != [self._issuer]:
            raise InvalidClient(f"client assertion aud must be the issuer '{self._issuer}'")
        single_use = SingleUse(single_use_key("client_assertion", sub, jti), exp + self._leeway)
        return AuthenticatedClient(agent=agent, method="private_key_jwt", single_use=single_use)

    def _client_secret(self, client_id: str, secret: str, method: str, now: float) -> AuthenticatedClient:
        if not self._allow_secret:
            raise InvalidClient("client_secret authentication is disabled; use private_key_jwt")
        agent = self._lookup(client_id) if client_id else None
        if agent is None or agent.secret_hash is None:
            raise InvalidClient("invalid client credentials")
        try:
            self._hasher.verify(agent.secret_hash, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError) as exc:
            raise InvalidClient("invalid client credentials") from exc
        return AuthenticatedClient(agent=agent, method=method)


def _parse_basic(authorization: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: client id and secret are form-urlencoded, then Basic-encoded."""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed basic authorization header") from exc
    if ":" not in decoded:
        raise InvalidClient("malformed basic authorization header")
    client_id, secret = decoded.split(":", 1)
    return unquote(client_id), unquote(secret)
