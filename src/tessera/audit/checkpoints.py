"""Signed checkpoints: ``(count, head hash, time)`` signed as a compact JWS by a server key.

Header ``{"alg": "ES256", "kid": …, "typ": "tessera-audit-checkpoint+jwt"}``;
payload ``{"iss", "seq", "head", "ts_ms"}``. A checkpoint at ``seq`` vouches for
every record up to and including ``seq``: anyone holding the server's public
JWKS can check it, and with it the chain, offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc import jwt

from tessera.identity.keys import PublicKey
from tessera.tokens.jose import JwsError, number_claim, parse_compact, string_claim, verify_signature

CHECKPOINT_TYPE = "tessera-audit-checkpoint+jwt"
MAX_CHECKPOINT_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    head_hash: str
    ts_ms: int
    kid: str
    jws: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "ts_ms": self.ts_ms,
            "kid": self.kid,
            "jws": self.jws,
        }


def sign_checkpoint(
    private_key: Any, kid: str, alg: str, *, issuer: str, seq: int, head_hash: str, ts_ms: int
) -> Checkpoint:
    header = {"alg": alg, "kid": kid, "typ": CHECKPOINT_TYPE}
    claims = {"iss": issuer, "seq": seq, "head": head_hash, "ts_ms": ts_ms}
    return Checkpoint(seq, head_hash, ts_ms, kid, jwt.encode(header, claims, private_key, algorithms=[alg]))


def verify_checkpoint(
    checkpoint: Checkpoint, keys: dict[str, tuple[PublicKey, tuple[str, ...]]], issuer: str | None
) -> None:
    """Raise :class:`JwsError` unless the JWS verifies and says what the row says."""
    jws = parse_compact(checkpoint.jws, max_bytes=MAX_CHECKPOINT_BYTES)
    if jws.typ != CHECKPOINT_TYPE:
        raise JwsError("not an audit checkpoint")
    found = keys.get(jws.kid or "")
    if found is None:
        raise JwsError(f"checkpoint signed by unknown key '{(jws.kid or '')[:64]}'")
    verify_signature(jws, found[0], found[1])
    claims = jws.claims
    if issuer is not None and claims.get("iss") != issuer:
        raise JwsError("checkpoint issuer does not match")
    if (
        number_claim(claims, "seq") != checkpoint.seq
        or string_claim(claims, "head", max_len=64) != checkpoint.head_hash
        or number_claim(claims, "ts_ms") != checkpoint.ts_ms
    ):
        raise JwsError("checkpoint fields differ from what was signed")
