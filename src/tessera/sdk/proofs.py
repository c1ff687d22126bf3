"""Signing what an agent presents: client assertions (RFC 7523 §3) and DPoP proofs (RFC 9449 §4.2)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from tessera.tokens.dpop import access_token_hash

PrivateKey = ECKey | OKPKey


def load_private_jwk(data: dict[str, Any]) -> tuple[PrivateKey, str, str]:
    """Return ``(key, kid, alg)`` for a private EC P-256 or Ed25519 JWK."""
    if "d" not in data:
        raise ValueError("the jwk has no private part ('d')")
    kty, crv = data.get("kty"), data.get("crv")
    key: PrivateKey
    if kty == "EC" and crv == "P-256":
        key = ECKey.import_key(dict(data))
        default_alg = "ES256"
    elif kty == "OKP" and crv == "Ed25519":
        # Signed as RFC 9864 "Ed25519", the same algorithm as RFC 8037 "EdDSA" on this
        # curve (joserfc warns on every use of the deprecated name); servers accept both.
        key = OKPKey.import_key({k: v for k, v in data.items() if k != "alg"})
        return key, str(data.get("kid") or key.thumbprint()), "Ed25519"
    else:
        raise ValueError(f"unsupported key type '{kty}'/'{crv}': use EC P-256 or OKP Ed25519")
    kid = str(data.get("kid") or key.thumbprint())
    return key, kid, str(data.get("alg") or default_alg)


def generate_private_jwk(kind: str = "ES256") -> dict[str, Any]:
    """A new private JWK with a thumbprint kid; ``kind`` is ES256 or Ed25519."""
    key: PrivateKey
    if kind == "ES256":
        key = ECKey.generate_key("P-256")
        alg = "ES256"
    elif kind in ("Ed25519", "EdDSA"):
        key = OKPKey.generate_key("Ed25519")
        alg = "EdDSA"
    else:
        raise ValueError(f"unsupported key kind '{kind}': use ES256 or Ed25519")
    data: dict[str, Any] = dict(key.as_dict(private=True))
    data["kid"] = key.thumbprint()
    data["alg"] = alg
    return data


def public_jwk(private: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in private.items() if k not in {"d"}}


def client_assertion(
    key: PrivateKey,
    kid: str,
    alg: str,
    *,
    client_id: str,
    audience: str,
    lifetime: int = 60,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def dpop_proof(
    key: PrivateKey,
    alg: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    nonce: str | None = None,
    now: float | None = None,
) -> str:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method.upper(),
        "htu": url,
        "iat": int(now if now is not None else time.time()),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    header = {"alg": alg, "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}
    return jwt.encode(header, claims, key, algorithms=[alg])
