"""Agents' public JWKs (RFC 7517, RFC 8037): only public EC P-256 or Ed25519 keys are registered."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.errors import ValidationFailed
from tessera.identity.keys import import_public_key, normalise_public_jwk
from tessera.sdk.proofs import generate_private_jwk, public_jwk
from tests.unit.helpers import b64


def public(kind: str = "ES256", **members: Any) -> dict[str, Any]:
    jwk = public_jwk(generate_private_jwk(kind))
    jwk.pop("kid")
    jwk.pop("alg")
    jwk.update(members)
    return {k: v for k, v in jwk.items() if v is not None}


def test_an_ec_key_defaults_to_es256_and_its_thumbprint_kid() -> None:
    jwk = public()
    kid, alg, normalised = normalise_public_jwk(jwk)
    assert alg == "ES256"
    assert kid == import_public_key(jwk).thumbprint()
    assert normalised == {**jwk, "kid": kid, "alg": "ES256"}


def test_an_ed25519_key_defaults_to_eddsa_and_may_say_ed25519() -> None:
    assert normalise_public_jwk(public("Ed25519"))[1] == "EdDSA"
    assert normalise_public_jwk(public("Ed25519", alg="Ed25519"))[1] == "Ed25519"


def test_a_given_kid_is_kept_and_use_sig_is_dropped() -> None:
    kid, _, normalised = normalise_public_jwk(public(kid="laptop-2026", use="sig"))
    assert kid == normalised["kid"] == "laptop-2026"
    assert "use" not in normalised


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k", "oth"])
def test_private_members_are_refused(member: str) -> None:
    with pytest.raises(ValidationFailed, match="private key material"):
        normalise_public_jwk(public(**{member: "AAAA"}))


def test_a_full_private_jwk_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="private"):
        normalise_public_jwk(generate_private_jwk())


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "n": "sXch", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": b64(b"\x01" * 32)},
        {"kty": "OKP", "crv": "Ed448", "x": b64(b"\x01" * 57)},
        {"crv": "P-256"},
        {},
    ],
)
def test_unsupported_key_types_are_refused(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match=r"unsupported key type|private key material"):
        normalise_public_jwk(jwk)


@pytest.mark.parametrize(
    "members",
    [
        {"x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)},  # not on the curve
        {"x": b64(b"\x01" * 31)},
        {"y": None},
        {"x": 12},
    ],
)
def test_invalid_ec_points_are_refused(members: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match="invalid jwk"):
        normalise_public_jwk(public(**members))


def test_an_ed25519_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        normalise_public_jwk(public("Ed25519", x=b64(b"\x01" * 31)))


@pytest.mark.parametrize(
    ("kind", "alg"),
    [("ES256", "EdDSA"), ("ES256", "ES384"), ("ES256", "HS256"), ("Ed25519", "ES256"), ("ES256", "none")],
)
def test_a_declared_alg_must_fit_the_curve(kind: str, alg: str) -> None:
    with pytest.raises(ValidationFailed, match="does not fit"):
        normalise_public_jwk(public(kind, alg=alg))


@pytest.mark.parametrize("use", ["enc", "", "SIG"])
def test_use_must_be_sig(use: str) -> None:
    with pytest.raises(ValidationFailed, match="use"):
        normalise_public_jwk(public(use=use))


@pytest.mark.parametrize("kid", ["x" * 129, 7])
def test_kids_are_bounded_strings(kid: object) -> None:
    with pytest.raises(ValidationFailed, match="kid"):
        normalise_public_jwk(public(kid=kid))


def test_a_jwk_must_be_an_object() -> None:
    with pytest.raises(ValidationFailed, match="json object"):
        import_public_key(["kty", "EC"])  # type: ignore[arg-type]
