"""Agents' public keys as JWKs (RFC 7517): ES256 on P-256, or Ed25519.

A registered key must be public only, of a supported type, and named by a kid;
without a kid, its RFC 7638 thumbprint becomes the kid.
"""

from __future__ import annotations

import functools
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from tessera.errors import ValidationFailed

#: JWS ``alg`` values accepted per key type and curve. ``EdDSA`` is the RFC 8037 name,
#: ``Ed25519`` the fully specified RFC 9864 one; both verify the same key.
ALGORITHMS_FOR_CURVE: dict[tuple[str, str], tuple[str, ...]] = {
    ("EC", "P-256"): ("ES256",),
    ("OKP", "Ed25519"): ("EdDSA", "Ed25519"),
}
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
MAX_KID_LENGTH = 128

PublicKey = ECKey | OKPKey


def allowed_algorithms(jwk: dict[str, Any]) -> tuple[str, ...]:
    return ALGORITHMS_FOR_CURVE.get((str(jwk.get("kty")), str(jwk.get("crv"))), ())


def import_public_key(jwk: dict[str, Any]) -> PublicKey:
    """Import a public JWK into a joserfc key; raises ``ValidationFailed`` on anything else."""
    _check_public(jwk)
    return _import(_members(jwk))


def import_public_key_cached(jwk: dict[str, Any]) -> tuple[PublicKey, str]:
    """:func:`import_public_key` and the key's RFC 7638 thumbprint, for the per-request paths.

    The same checks run every time; the import is memoised (bounded LRU) by the JWK's
    whole content, so a reused ``kid`` can never yield a different key. Importing
    costs about as much as verifying a signature, and agents present the same few
    keys again and again (client assertions, DPoP proofs).
    """
    _check_public(jwk)
    members = _members(jwk)
    try:
        return _import_and_thumbprint(tuple(sorted(members.items())))
    except TypeError:  # a member that cannot be hashed (a list, say): no caching
        key = _import(members)
        return key, key.thumbprint()


def _check_public(jwk: dict[str, Any]) -> None:
    if not isinstance(jwk, dict):
        raise ValidationFailed("jwk must be a json object")
    if PRIVATE_MEMBERS & jwk.keys():
        raise ValidationFailed("jwk holds private key material; register only the public key")
    if not allowed_algorithms(jwk):
        raise ValidationFailed(
            f"unsupported key type '{jwk.get('kty')}'/'{jwk.get('crv')}': use EC P-256 or OKP Ed25519"
        )


def _members(jwk: dict[str, Any]) -> dict[str, Any]:
    # Which algorithms a key may verify is decided by the caller (the registered alg,
    # ALGORITHMS_FOR_CURVE), so the key object carries no "alg" to veto EdDSA vs Ed25519.
    return {k: v for k, v in jwk.items() if k != "alg"}


def _import(members: dict[str, Any]) -> PublicKey:
    try:
        if members["kty"] == "EC":
            return ECKey.import_key(members)
        return OKPKey.import_key(members)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(f"invalid jwk: {str(exc).lower()}") from exc


@functools.lru_cache(maxsize=4096)
def _import_and_thumbprint(members: tuple[tuple[str, Any], ...]) -> tuple[PublicKey, str]:
    key = _import(dict(members))
    return key, key.thumbprint()


def normalise_public_jwk(jwk: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """Validate a public JWK and return ``(kid, alg, public_jwk)``.

    ``alg`` is the key's declared ``alg`` if any (it must fit the curve), else
    the default for the curve (ES256, or EdDSA for Ed25519).
    """
    key = import_public_key(jwk)
    algs = allowed_algorithms(jwk)
    declared = jwk.get("alg")
    if declared is not None and declared not in algs:
        raise ValidationFailed(f"jwk alg '{declared}' does not fit a {jwk.get('crv')} key")
    if jwk.get("use") not in (None, "sig"):
        raise ValidationFailed(f"jwk use '{jwk.get('use')}' is not 'sig'")
    kid = jwk.get("kid") or key.thumbprint()
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_KID_LENGTH:
        raise ValidationFailed(f"invalid kid: 1-{MAX_KID_LENGTH} characters")
    public: dict[str, str] = {k: str(v) for k, v in key.as_dict(private=False).items()}
    public["kid"] = kid
    alg = str(declared or algs[0])
    public["alg"] = alg
    public.pop("use", None)
    return kid, alg, public
