"""Builders shared by the core unit tests: agents, hand-signed JWTs and token requests.

JWTs here are signed by hand, not through ``joserfc.jwt.encode``, so a test can put
anything in a header (``alg: none``, ``crit``, ``jku``, an embedded ``jwk``…) and
only the property under test is wrong.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import JWSRegistry

from tessera.identity.agents import Agent
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tessera.sdk.proofs import generate_private_jwk, load_private_jwk, public_jwk
from tessera.sdk.verifier import JwksCache, TokenVerifier
from tessera.tokens.client_auth import CLIENT_ASSERTION_TYPE
from tessera.tokens.dpop import access_token_hash
from tessera.tokens.issuer import IssuedToken
from tessera.tokens.requests import TokenRequest, build_token_request

PrivateKey = ECKey | OKPKey
DROP: Any = object()  # a claim or header value that means "leave this member out"
_SIGNERS = JWSRegistry(algorithms=["ES256", "Ed25519"], strict_check_header=False)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def unverified_claims(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return claims


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **overrides}
    return {k: v for k, v in out.items() if v is not DROP}


def sign_jwt(header: dict[str, Any], claims: dict[str, Any], key: PrivateKey) -> str:
    """A compact JWS over exactly these header and claims, signed ES256 or Ed25519 by ``key``."""
    signing_input = f"{b64_json(header)}.{b64_json(claims)}"
    alg = "Ed25519" if isinstance(key, OKPKey) else "ES256"
    signature = _SIGNERS.get_alg(alg).sign(signing_input.encode("ascii"), key)
    return f"{signing_input}.{b64(signature)}"


def private_key(kind: str = "ES256") -> PrivateKey:
    return load_private_jwk(generate_private_jwk(kind))[0]


@dataclass(frozen=True)
class Client:
    """A registered agent and the private JWK it holds."""

    agent: Agent
    private_jwk: dict[str, Any]

    @property
    def id(self) -> str:
        return self.agent.id

    @property
    def key(self) -> PrivateKey:
        return load_private_jwk(self.private_jwk)[0]

    @property
    def kid(self) -> str:
        return str(self.private_jwk["kid"])

    @property
    def alg(self) -> str:
        return str(self.private_jwk["alg"])


def register(
    runtime: Runtime,
    *,
    kind: str = "ES256",
    scopes: tuple[str, ...] = ("tickets:read", "tickets:write"),
    **fields: Any,
) -> Client:
    jwk = generate_private_jwk(kind)
    agent = runtime.agents.create(
        NewAgent(
            name="test agent",
            owner="owner@example.com",
            scopes=scopes,
            jwks=(public_jwk(jwk),),
            **fields,
        )
    )
    return Client(agent, jwk)


def assertion(
    runtime: Runtime,
    client: Client,
    *,
    header: dict[str, Any] | None = None,
    key: PrivateKey | None = None,
    **claims: Any,
) -> str:
    """A client assertion (RFC 7523 §3) for ``client``; keyword arguments override claims."""
    now = int(runtime.clock.now())
    base = {
        "iss": client.id,
        "sub": client.id,
        "aud": runtime.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    base_header = {"alg": client.alg, "kid": client.kid, "typ": "JWT"}
    return sign_jwt(merged(base_header, header or {}), merged(base, claims), key or client.key)


def proof(
    runtime: Runtime,
    key: PrivateKey,
    *,
    method: str = "POST",
    url: str | None = None,
    access_token: str | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A DPoP proof (RFC 9449 §4.2) by ``key``, for the token endpoint unless ``url`` says otherwise."""
    base: dict[str, Any] = {
        "jti": secrets.token_urlsafe(12),
        "htm": method,
        "htu": url or runtime.settings.token_endpoint,
        "iat": int(runtime.clock.now()),
    }
    if access_token is not None:
        base["ath"] = access_token_hash(access_token)
    base_header = {
        "typ": "dpop+jwt",
        "alg": "EdDSA" if isinstance(key, OKPKey) else "ES256",
        "jwk": dict(key.as_dict(private=False)),
    }
    return sign_jwt(merged(base_header, header or {}), merged(base, claims), key)


def token_request(
    runtime: Runtime,
    pairs: list[tuple[str, str]],
    *,
    dpop: str | None = None,
    authorization: str | None = None,
) -> TokenRequest:
    return build_token_request(
        pairs,
        method="POST",
        url=runtime.settings.token_endpoint,
        authorization=authorization,
        dpop_headers=[dpop] if dpop is not None else [],
        client_ip="127.0.0.1",
    )


def client_auth(client_assertion: str) -> list[tuple[str, str]]:
    return [("client_assertion_type", CLIENT_ASSERTION_TYPE), ("client_assertion", client_assertion)]


def request_token(
    runtime: Runtime,
    client: Client,
    *,
    dpop_key: PrivateKey | None = None,
    dpop: str | None = None,
    pairs: list[tuple[str, str]] | None = None,
    **params: str,
) -> IssuedToken:
    """Run the client_credentials grant through the token endpoint, as the HTTP route does."""
    form = [("grant_type", "client_credentials"), *client_auth(assertion(runtime, client))]
    form += list(params.items()) + list(pairs or [])
    if dpop_key is not None:
        dpop = proof(runtime, dpop_key)
    return runtime.token_endpoint.handle(token_request(runtime, form, dpop=dpop))


def local_verifier(runtime: Runtime, *, audience: str | None = None) -> TokenVerifier:
    """An SDK verifier holding the runtime's current JWKS, on the runtime's clock."""
    jwks = JwksCache(jwks=runtime.keyring().jwks(runtime.clock.now()))
    return TokenVerifier(
        issuer=runtime.issuer, jwks=jwks, audience=audience or runtime.issuer, clock=runtime.clock.now
    )
