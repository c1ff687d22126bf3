"""Strict compact JWS handling shared by access tokens, client assertions and DPoP proofs.

Every JWT Tessera accepts goes through :func:`parse_compact` and
:func:`verify_signature`, which hold the invariants of DESIGN.md:

- ``alg`` must be one configured for the key the ``kid`` selects; ``none`` and any
  HMAC are never accepted, because keys are EC or OKP only (RFC 8725 §3.1, §3.2);
- an unknown ``crit`` is rejected (RFC 7515 §4.1.11): Tessera understands none;
- ``jku``, ``x5u`` and ``x5c`` are never used to find a key (RFC 8725 §3.10);
  an embedded ``jwk`` is used only where RFC 9449 requires it, for DPoP proofs;
- ``typ`` is checked by each caller (RFC 8725 §3.11);
- size is bounded before anything is decoded.

Cryptographic work is joserfc's (which uses ``cryptography``); nothing here signs
or verifies by itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from tessera.identity.keys import PublicKey
from tessera.tokens.sealing import b64url_decode

ASYMMETRIC_ALGORITHMS = ("ES256", "EdDSA", "Ed25519")
_REGISTRY = JWSRegistry(algorithms=list(ASYMMETRIC_ALGORITHMS), strict_check_header=False)
_MAX_HEADER_BYTES = 2048
#: RFC 9864 §2: ``EdDSA`` on an Ed25519 key is the ``Ed25519`` algorithm; verifying through
#: the fully specified name avoids joserfc's deprecation warning on every call. Only
#: Ed25519 keys are ever accepted (``identity.keys.ALGORITHMS_FOR_CURVE``).
_VERIFY_AS = {"EdDSA": "Ed25519"}


class JwsError(Exception):
    """A JWS failed a structural or cryptographic check; the message is safe to return."""


@dataclass(frozen=True, slots=True)
class CompactJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def typ(self) -> str | None:
        typ = self.header.get("typ")
        return typ if isinstance(typ, str) else None


def _decode_json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, RecursionError) as exc:
        raise JwsError(f"malformed {what}") from exc
    if not isinstance(value, dict):
        raise JwsError(f"{what} is not a json object")
    return value


def parse_compact(
    value: str, *, max_bytes: int, algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
) -> CompactJws:
    """Decode a compact JWS without trusting it; no signature is checked here.

    ``algorithms`` is the set a caller can verify at all (federation adds RSA); each
    key still narrows it when the signature is checked.
    """
    if not isinstance(value, str) or not value:
        raise JwsError("empty jwt")
    if len(value) > max_bytes:
        raise JwsError(f"jwt is {len(value)} bytes, over the {max_bytes}-byte limit")
    parts = value.split(".")
    if len(parts) != 3:
        raise JwsError("not a compact jws (expected three dot-separated parts)")
    header_segment, payload_segment, signature_segment = parts
    if len(header_segment) > _MAX_HEADER_BYTES:
        raise JwsError("jws header is too large")
    header = _decode_json_object(header_segment, "jws header")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise JwsError("jws header has no alg")
    if alg.lower() == "none":
        raise JwsError("alg 'none' is not accepted")
    if alg not in algorithms:
        raise JwsError(f"alg '{alg[:20]}' is not accepted")
    for member in ("typ", "kid", "cty"):  # RFC 7515 §4.1.4, §4.1.9, §4.1.10
        if member in header and not isinstance(header[member], str):
            raise JwsError(f"jws header '{member}' must be a string")
    if "crit" in header:
        raise JwsError(f"unsupported critical header parameters {header['crit']!r:.60}")
    if "b64" in header:
        raise JwsError("unencoded payloads (b64) are not accepted")
    claims = _decode_json_object(payload_segment, "jwt claims")
    try:
        signature = b64url_decode(signature_segment)
    except ValueError as exc:
        raise JwsError("malformed signature") from exc
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    return CompactJws(header=header, claims=claims, signing_input=signing_input, signature=signature)


def verify_signature(jws: CompactJws, key: PublicKey, allowed_algs: tuple[str, ...]) -> None:
    """Verify ``jws`` with ``key``, accepting only ``allowed_algs`` (those of that key)."""
    if jws.alg not in allowed_algs:
        raise JwsError(f"alg '{jws.alg}' is not allowed for this key")
    try:
        algorithm = _REGISTRY.get_alg(_VERIFY_AS.get(jws.alg, jws.alg))
        algorithm.check_key(key)
        ok = algorithm.verify(jws.signing_input, jws.signature, key)
    except (JoseError, ValueError, TypeError) as exc:
        raise JwsError("signature verification failed") from exc
    if not ok:
        raise JwsError("signature verification failed")


def number_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JwsError(f"claim '{name}' must be a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise JwsError(f"claim '{name}' must be a number") from exc
    if not math.isfinite(number):  # json.loads accepts NaN and Infinity
        raise JwsError(f"claim '{name}' must be a number")
    return number


def string_claim(claims: dict[str, Any], name: str, *, max_len: int = 512) -> str:
    """A required, non-empty string claim of at most ``max_len`` characters."""
    value = claims.get(name)
    if value is None:
        raise JwsError(f"missing claim '{name}'")
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise JwsError(f"claim '{name}' must be a non-empty string")
    return value


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return list(aud)
    raise JwsError("claim 'aud' must be a string or a non-empty array of strings")


def check_lifetime(
    claims: dict[str, Any],
    *,
    now: float,
    leeway: float,
    max_lifetime: float | None = None,
) -> tuple[float, float | None]:
    """RFC 7519 §4.1.4-4.1.6 with bounded leeway; ``exp`` is required. Returns (exp, iat)."""
    exp = number_claim(claims, "exp")
    if exp is None:
        raise JwsError("missing claim 'exp'")
    iat = number_claim(claims, "iat")
    nbf = number_claim(claims, "nbf")
    if now > exp + leeway:
        raise JwsError("jwt has expired")
    if nbf is not None and nbf > now + leeway:
        raise JwsError("jwt is not yet valid (nbf)")
    if iat is not None and iat > now + leeway:
        raise JwsError("jwt was issued in the future (iat)")
    if max_lifetime is not None:
        start = iat if iat is not None else now
        if exp - start > max_lifetime + leeway:
            raise JwsError(f"jwt lifetime exceeds {int(max_lifetime)} seconds")
    return exp, iat
