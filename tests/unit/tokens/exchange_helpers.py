"""Token exchange (RFC 8693) request builders and a person's identity provider for tests.

``PersonIssuer`` stands for a company's identity provider: it signs people's
tokens with its own key, and its :meth:`verifier` checks them the way a trusted
issuer's verifier does (signature, issuer, expiry), returning ``local=False``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from tessera.errors import InvalidGrant
from tessera.runtime import Runtime
from tessera.tokens.grants.token_exchange import GRANT_TYPE
from tessera.tokens.issuer import IssuedToken
from tessera.tokens.subject_tokens import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, VerifiedSubjectToken
from tests.unit.helpers import Client, PrivateKey, assertion, client_auth, proof, token_request


def exchange(
    runtime: Runtime,
    client: Client,
    subject_token: str | None,
    *,
    subject_token_type: str | None = ACCESS_TOKEN_TYPE,
    dpop_key: PrivateKey | None = None,
    pairs: list[tuple[str, str]] | None = None,
    **params: str,
) -> IssuedToken:
    """Run the token exchange grant through the token endpoint, as the HTTP route does."""
    form = [("grant_type", GRANT_TYPE), *client_auth(assertion(runtime, client))]
    if subject_token is not None:
        form.append(("subject_token", subject_token))
    if subject_token_type is not None:
        form.append(("subject_token_type", subject_token_type))
    form += list(params.items()) + list(pairs or [])
    dpop = proof(runtime, dpop_key) if dpop_key is not None else None
    return runtime.token_endpoint.handle(token_request(runtime, form, dpop=dpop))


@dataclass
class PersonIssuer:
    """A test identity provider for people, trusted through :meth:`verifier`."""

    runtime: Runtime
    issuer: str = "https://idp.example.test"
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", parameters={"kid": "idp-1"}))

    def token(
        self, sub: str = "alice@example.com", *, lifetime: int = 600, key: ECKey | None = None, **claims: Any
    ) -> str:
        now = int(self.runtime.clock.now())
        body = {
            "iss": self.issuer,
            "sub": sub,
            "aud": [self.runtime.issuer, "https://crm.example/api"],
            "scope": "tickets:read tickets:write crm:read",
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(12),
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or self.key
        return jwt.encode({"alg": "ES256", "kid": "idp-1", "typ": "JWT"}, body, signer, algorithms=["ES256"])

    def verifier(self) -> PersonTokens:
        return PersonTokens(self.issuer, self.key)


@dataclass
class PersonTokens:
    """The verifier side of :class:`PersonIssuer` (a ``SubjectTokenVerifier``)."""

    issuer: str
    key: ECKey

    def accepts(self, issuer: str) -> bool:
        return issuer == self.issuer

    def verify(self, token: str, *, now: float) -> VerifiedSubjectToken:
        try:
            claims = jwt.decode(token, self.key, algorithms=["ES256"]).claims
        except (JoseError, ValueError) as exc:
            raise InvalidGrant(f"subject token rejected: {exc}") from exc
        if claims.get("iss") != self.issuer or not isinstance(claims.get("exp"), int):
            raise InvalidGrant("subject token rejected: wrong issuer")
        if claims["exp"] <= now:
            raise InvalidGrant("subject token has expired")
        aud = claims.get("aud", [])
        return VerifiedSubjectToken(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            expires_at=float(claims["exp"]),
            token_id=claims.get("jti"),
            scopes=tuple(str(claims.get("scope", "")).split()),
            audience=tuple(aud if isinstance(aud, list) else [aud]),
            claims=claims,
            local=False,
        )


__all__ = ["JWT_TOKEN_TYPE", "PersonIssuer", "PersonTokens", "exchange"]
