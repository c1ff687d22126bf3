"""Worked examples from RFC 7515, RFC 7638, RFC 8037 and RFC 9449, run through Tessera's own code paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from tessera.errors import ValidationFailed
from tessera.identity.keys import import_public_key, normalise_public_jwk
from tessera.tokens.dpop import verify_dpop_proof
from tessera.tokens.jose import CompactJws, JwsError, parse_compact, verify_signature
from tessera.tokens.sealing import b64url_decode

VECTORS = json.loads((Path(__file__).parent / "vectors" / "jose_examples.json").read_text())


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["source"] for case in cases]


@pytest.mark.parametrize("case", VECTORS["thumbprints"], ids=ids(VECTORS["thumbprints"]))
def test_rfc_7638_thumbprints(case: dict[str, Any]) -> None:
    jwk = case["jwk"]
    if not case["registrable"]:
        # The RFC's own example is RSA: the canonical form is joserfc's; Tessera refuses RSA keys.
        assert RSAKey.import_key(jwk).thumbprint() == case["thumbprint"]
        with pytest.raises(ValidationFailed):
            normalise_public_jwk(jwk)
        return
    assert import_public_key(jwk).thumbprint() == case["thumbprint"]
    kid, _, _ = normalise_public_jwk(jwk)
    assert kid == case["thumbprint"]  # a key registered without a kid is named by its thumbprint


@pytest.mark.parametrize("case", VECTORS["dpop_proofs"], ids=ids(VECTORS["dpop_proofs"]))
def test_rfc_9449_example_proof(case: dict[str, Any]) -> None:
    verified = verify_dpop_proof(
        case["proof"], method=case["method"], url=case["url"], now=case["now"], max_age=60, leeway=30
    )
    assert verified.jkt == case["jkt"]
    assert verified.jti == case["jti"]
    with pytest.raises(JwsError, match="window"):
        verify_dpop_proof(
            case["proof"],
            method=case["method"],
            url=case["url"],
            now=case["now"] + 3600,
            max_age=60,
            leeway=30,
        )
    with pytest.raises(JwsError, match="htu"):
        verify_dpop_proof(
            case["proof"],
            method=case["method"],
            url=case["url"] + "2",
            now=case["now"],
            max_age=60,
            leeway=30,
        )


@pytest.mark.parametrize("case", VECTORS["signatures"], ids=ids(VECTORS["signatures"]))
def test_rfc_7515_es256_example(case: dict[str, Any]) -> None:
    jws = parse_compact(case["jws"], max_bytes=8192)
    assert jws.claims == case["claims"]
    verify_signature(jws, import_public_key(case["jwk"]), ("ES256",))
    header, payload, signature = case["jws"].split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(JwsError, match="signature"):
        verify_signature(
            parse_compact(f"{header}.{payload}.{flipped}", max_bytes=8192),
            import_public_key(case["jwk"]),
            ("ES256",),
        )


@pytest.mark.parametrize("case", VECTORS["ed25519_signatures"], ids=ids(VECTORS["ed25519_signatures"]))
def test_rfc_8037_ed25519_example(case: dict[str, Any]) -> None:
    header, payload, signature = case["jws"].split(".")
    jws = CompactJws({"alg": "EdDSA"}, {}, f"{header}.{payload}".encode(), b64url_decode(signature))
    verify_signature(jws, import_public_key(case["jwk"]), ("EdDSA", "Ed25519"))
    with pytest.raises(JwsError, match="not allowed"):
        verify_signature(jws, import_public_key(case["jwk"]), ("ES256",))
    # The payload is not a JSON claim set, so as a JWT it is refused before any signature check.
    with pytest.raises(JwsError, match="jwt claims"):
        parse_compact(case["jws"], max_bytes=8192)
