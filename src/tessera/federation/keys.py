"""A trusted issuer's signing keys (RFC 7517 JWK sets) and the strict signature check on them.

Only asymmetric keys are ever used: ``oct`` keys are dropped, so an HMAC keyed with
a public key cannot happen (RFC 8725 §3.1, §3.2). Each key verifies only the
algorithms its type allows, narrowed by its own ``alg`` if it declares one and by
the issuer's allowed list, so a token's ``alg`` cannot choose another algorithm
for a key (alg confusion). RSA keys shorter than 2048 bits are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from tessera.identity.keys import PRIVATE_MEMBERS
from tessera.tokens.jose import CompactJws, JwsError
from tessera.tokens.sealing import b64url_decode

FEDERATION_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")
MAX_KEYS = 100
MIN_RSA_BITS = 2048
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_ALGS_FOR_KEY: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
    ("EC", "P-521"): ("ES512",),
    ("OKP", "Ed25519"): ("EdDSA",),
    ("RSA", None): _RSA_ALGS,
}
_REGISTRY = JWSRegistry(algorithms=[*FEDERATION_ALGORITHMS, "Ed25519"], strict_check_header=False)
#: RFC 9864 §2: EdDSA on an Ed25519 key is verified as ``Ed25519`` (no deprecation warning).
_VERIFY_AS = {"EdDSA": "Ed25519"}

ExternalKey = RSAKey | ECKey | OKPKey


class JwksError(Exception):
    """A JWK set is malformed or holds no usable key; the message is safe to return."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str | None
    algorithms: tuple[str, ...]
    key: ExternalKey


def rsa_bits(jwk: dict[str, Any]) -> int:
    """The modulus length of an RSA JWK (RFC 7518 §6.3.1 ``n``), read before importing it."""
    n = jwk.get("n")
    try:
        return int.from_bytes(b64url_decode(n), "big").bit_length() if isinstance(n, str) else 0
    except ValueError:
        return 0


def _import(jwk: dict[str, Any]) -> ExternalKey:
    kty = jwk.get("kty")
    members = {k: v for k, v in jwk.items() if k not in ("alg", "use", "key_ops")}
    if kty == "RSA":
        if rsa_bits(jwk) < MIN_RSA_BITS:
            raise JwksError(f"rsa key is shorter than {MIN_RSA_BITS} bits")
        return RSAKey.import_key(members)
    if kty == "EC":
        return ECKey.import_key(members)
    return OKPKey.import_key(members)


def parse_key(jwk: Any, allowed: tuple[str, ...]) -> VerificationKey:
    """One public signing JWK, or ``JwksError`` saying why it cannot be used."""
    if not isinstance(jwk, dict):
        raise JwksError("a key is not a json object")
    if PRIVATE_MEMBERS & jwk.keys():
        raise JwksError("a key holds private key material")
    kty = jwk.get("kty")
    curve = None if kty == "RSA" else jwk.get("crv")
    algorithms = _ALGS_FOR_KEY.get((str(kty), curve if isinstance(curve, str) else None))
    if algorithms is None:
        raise JwksError(f"unsupported key type '{str(kty)[:20]}'/'{str(curve)[:20]}'")
    if jwk.get("use") not in (None, "sig"):
        raise JwksError(f"key use '{str(jwk.get('use'))[:20]}' is not 'sig'")
    declared = jwk.get("alg")
    if declared is not None:
        if declared not in algorithms:
            raise JwksError(f"key alg '{str(declared)[:20]}' does not fit a {kty} key")
        algorithms = (declared,)
    algorithms = tuple(a for a in algorithms if a in allowed)
    if not algorithms:
        raise JwksError(f"no allowed algorithm fits a {kty} key")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 1 <= len(kid) <= 256):
        raise JwksError("key kid must be a string of 1-256 characters")
    try:
        key = _import(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise JwksError(f"invalid key: {str(exc).lower()[:80]}") from exc
    return VerificationKey(kid=kid, algorithms=algorithms, key=key)


def parse_jwks(document: Any, allowed: tuple[str, ...], *, strict: bool) -> tuple[VerificationKey, ...]:
    """A JWK set's usable signing keys (RFC 7517 §5).

    ``strict`` (a static JWKS an admin registers) refuses any unusable key; a fetched
    set may also carry encryption or unsupported keys, which are skipped.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a jwk set (expected an object with a 'keys' array)")
    raw_keys = document["keys"]
    if len(raw_keys) > MAX_KEYS:
        raise JwksError(f"jwk set holds more than {MAX_KEYS} keys")
    keys: list[VerificationKey] = []
    for raw in raw_keys:
        try:
            keys.append(parse_key(raw, allowed))
        except JwksError:
            if strict:
                raise
    if not keys:
        raise JwksError("jwk set holds no usable signing key")
    kids = [k.kid for k in keys if k.kid is not None]
    if len(kids) != len(set(kids)):
        raise JwksError("two keys share one kid")
    return tuple(keys)


def select_key(keys: tuple[VerificationKey, ...], jws: CompactJws) -> VerificationKey | None:
    """The key the token's ``kid`` names; without a kid, the only key that fits its ``alg``."""
    if jws.kid is not None:
        return next((k for k in keys if k.kid == jws.kid), None)
    fitting = [k for k in keys if jws.alg in k.algorithms]
    return fitting[0] if len(fitting) == 1 else None


def verify_with(jws: CompactJws, key: VerificationKey) -> None:
    """Verify the signature, accepting only the algorithms this key may verify."""
    if jws.alg not in key.algorithms:
        raise JwsError(f"alg '{jws.alg}' is not allowed for key '{key.kid or '(no kid)'}'")
    try:
        algorithm = _REGISTRY.get_alg(_VERIFY_AS.get(jws.alg, jws.alg))
        algorithm.check_key(key.key)
        ok = algorithm.verify(jws.signing_input, jws.signature, key.key)
    except (JoseError, ValueError, TypeError) as exc:
        raise JwsError("signature verification failed") from exc
    if not ok:
        raise JwsError("signature verification failed")
