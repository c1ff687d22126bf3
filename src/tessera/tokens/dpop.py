"""DPoP proofs (RFC 9449): verification, key thumbprints, and server nonces.

Used by the token endpoint (to bind tokens, §5) and by resource servers
through ``tessera.sdk`` (to check a bound token's proof, §7). Single use of the
proof's ``jti`` (§11.1) is the caller's job: the server claims it atomically in
the database, the SDK in a bounded in-process cache.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

from tessera.errors import ValidationFailed
from tessera.identity.keys import PRIVATE_MEMBERS, allowed_algorithms, import_public_key_cached
from tessera.tokens.jose import JwsError, number_claim, parse_compact, string_claim, verify_signature
from tessera.tokens.sealing import b64url_decode, b64url_encode

DPOP_TYPE = "dpop+jwt"
MAX_PROOF_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DPoPProof:
    jkt: str
    jti: str
    iat: float
    htm: str
    htu: str
    nonce: str | None


_PERCENT_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _normalise_percent(match: re.Match[str]) -> str:
    """RFC 3986 §6.2.2.1-6.2.2.2: decode unreserved characters, upper-case the rest."""
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for an absolute path (or an empty one, which is ``/``)."""
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    output: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and output:
                output.pop()
            if last:
                output.append("")
            continue
        output.append(segment)
    return "/" + "/".join(output)


def normalise_htu(url: str) -> str:
    """RFC 9449 §4.3 (9): compare URIs without query and fragment (RFC 3986 §6.2.2-6.2.3).

    Raises ``ValueError`` if ``url`` cannot be parsed (a bad port or IPv6 literal).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if (scheme, port) in {("http", 80), ("https", 443)}:
        port = None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    path = _remove_dot_segments(_PERCENT_ENCODED.sub(_normalise_percent, parts.path))
    return f"{scheme}://{netloc}{path}"


def access_token_hash(access_token: str) -> str:
    """``ath`` (RFC 9449 §4.2): base64url SHA-256 of the ASCII access token."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest())


def verify_dpop_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    max_age: float,
    leeway: float,
    access_token: str | None = None,
) -> DPoPProof:
    """Check a proof per RFC 9449 §4.3 steps 1-8, 10-12. Raises :class:`JwsError`."""
    jws = parse_compact(proof, max_bytes=MAX_PROOF_BYTES)
    if jws.typ != DPOP_TYPE:
        raise JwsError(f"typ '{jws.typ}' is not dpop+jwt")
    jwk = jws.header.get("jwk")
    if not isinstance(jwk, dict):
        raise JwsError("dpop proof header has no jwk")
    if PRIVATE_MEMBERS & jwk.keys():
        raise JwsError("dpop proof jwk holds private key material")
    try:
        key, jkt = import_public_key_cached(jwk)
    except ValidationFailed as exc:
        raise JwsError(f"dpop proof jwk: {exc.description}") from exc
    verify_signature(jws, key, allowed_algorithms(jwk))
    claims = jws.claims
    jti = string_claim(claims, "jti", max_len=256)
    htm = string_claim(claims, "htm", max_len=16)
    htu = string_claim(claims, "htu", max_len=2048)
    iat = number_claim(claims, "iat")
    if iat is None:
        raise JwsError("missing claim 'iat'")
    if htm != method.upper():
        raise JwsError(f"htm '{htm}' does not match the request method")
    try:
        htu_matches = normalise_htu(htu) == normalise_htu(url)
    except ValueError as exc:
        raise JwsError("htu is not a valid uri") from exc
    if not htu_matches:
        raise JwsError("htu does not match the request uri")
    if iat > now + leeway or iat < now - max_age - leeway:
        raise JwsError("dpop proof iat is outside the acceptable window")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
            raise JwsError("dpop proof ath does not match the access token")
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise JwsError("claim 'nonce' must be a string")
    return DPoPProof(jkt=jkt, jti=jti, iat=iat, htm=htm, htu=htu, nonce=nonce)


class NonceIssuer:
    """Stateless server nonces (RFC 9449 §8): ``window || HMAC(secret, window)[:16]``.

    Every replica derives the same secret from the master key, so a nonce minted
    by one is accepted by all. A nonce is valid in its window and the next one.
    """

    def __init__(self, secret: bytes, lifetime: float) -> None:
        self._secret = secret
        self._lifetime = lifetime

    def _for_window(self, window: int) -> str:
        packed = struct.pack(">q", window)
        mac = hmac.new(self._secret, packed, hashlib.sha256).digest()[:16]
        return b64url_encode(packed + mac)

    def current(self, now: float) -> str:
        return self._for_window(int(now // self._lifetime))

    def is_valid(self, nonce: str | None, now: float) -> bool:
        if not nonce or len(nonce) > 64:
            return False
        try:
            raw = b64url_decode(nonce)
        except ValueError:
            return False
        if len(raw) != 24:
            return False
        (window,) = struct.unpack(">q", raw[:8])
        current = int(now // self._lifetime)
        if window not in (current, current - 1):
            return False
        return hmac.compare_digest(nonce, self._for_window(window))
