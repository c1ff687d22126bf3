"""DPoP proof verification (RFC 9449 §4.3) and stateless server nonces (§8), without a server."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tessera.tokens.dpop import NonceIssuer, access_token_hash, normalise_htu, verify_dpop_proof
from tessera.tokens.jose import JwsError
from tessera.tokens.sealing import b64url_decode
from tests.unit.helpers import DROP, PrivateKey, b64, b64_json, merged, private_key, sign_jwt

NOW = 1_800_000_000
URL = "https://as.example/oauth2/token"


def make_proof(
    key: PrivateKey, *, header: dict[str, Any] | None = None, signer: PrivateKey | None = None, **claims: Any
) -> str:
    base_header = {
        "typ": "dpop+jwt",
        "alg": "ES256" if key.key_type == "EC" else "EdDSA",
        "jwk": dict(key.as_dict(private=False)),
    }
    base = {"jti": secrets.token_urlsafe(8), "htm": "POST", "htu": URL, "iat": NOW}
    return sign_jwt(merged(base_header, header or {}), merged(base, claims), signer or key)


def check(proof: str, *, method: str = "POST", url: str = URL, now: float = NOW, **kwargs: Any) -> Any:
    return verify_dpop_proof(proof, method=method, url=url, now=now, max_age=60, leeway=30, **kwargs)


@pytest.mark.parametrize("kind", ["ES256", "Ed25519"])
def test_a_valid_proof_yields_the_keys_thumbprint(kind: str) -> None:
    key = private_key(kind)
    verified = check(make_proof(key, jti="j-1"))
    assert verified.jkt == key.thumbprint()
    assert (verified.jti, verified.htm, verified.htu, verified.nonce) == ("j-1", "POST", URL, None)


def test_ed25519_proofs_may_use_either_algorithm_name() -> None:
    key = private_key("Ed25519")
    assert check(make_proof(key, header={"alg": "Ed25519"})).jkt == key.thumbprint()


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "DPOP+JWT", DROP])
def test_typ_must_be_dpop_jwt(typ: object) -> None:
    with pytest.raises(JwsError, match="typ"):
        check(make_proof(private_key(), header={"typ": typ}))


@pytest.mark.parametrize("jwk", [DROP, "not an object", ["a"], {}])
def test_the_header_must_carry_a_public_jwk(jwk: object) -> None:
    with pytest.raises(JwsError, match="jwk"):
        check(make_proof(private_key(), header={"jwk": jwk}))


@pytest.mark.parametrize("kind", ["ES256", "Ed25519"])
def test_a_jwk_holding_the_private_key_is_refused(kind: str) -> None:
    key = private_key(kind)
    with pytest.raises(JwsError, match="private key material"):
        check(make_proof(key, header={"jwk": dict(key.as_dict(private=True))}))


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "n": "sXch", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {"kty": "EC", "crv": "P-256", "x": 1, "y": 2},
        # A point that is not on the curve (invalid-curve attack).
        {"kty": "EC", "crv": "P-256", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)},
    ],
)
def test_unsupported_or_invalid_jwks_are_refused(jwk: dict[str, Any]) -> None:
    with pytest.raises(JwsError, match=r"jwk|not allowed"):
        check(make_proof(private_key(), header={"jwk": jwk}))


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused() -> None:
    with pytest.raises(JwsError, match="signature"):
        check(make_proof(private_key(), signer=private_key()))


def test_alg_must_fit_the_jwk() -> None:
    with pytest.raises(JwsError, match="not allowed"):
        check(make_proof(private_key(), header={"alg": "EdDSA"}, signer=private_key("Ed25519")))


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_none_and_hmac_proofs_are_refused(alg: str) -> None:
    key = private_key()
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": dict(key.as_dict(private=False))}
    unsigned = f"{b64_json(header)}.{b64_json({'jti': 'x', 'htm': 'POST', 'htu': URL, 'iat': NOW})}.AAAA"
    with pytest.raises(JwsError, match="alg"):
        check(unsigned)


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_required_claims(claim: str) -> None:
    with pytest.raises(JwsError, match=claim):
        check(make_proof(private_key(), **{claim: DROP}))


@pytest.mark.parametrize(("htm", "method"), [("GET", "POST"), ("post", "POST"), ("POST", "PUT")])
def test_htm_must_be_the_request_method(htm: str, method: str) -> None:
    with pytest.raises(JwsError, match="htm"):
        check(make_proof(private_key(), htm=htm), method=method)


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example/oauth2/introspect",
        "https://evil.example/oauth2/token",
        "http://as.example/oauth2/token",
        "https://as.example:8443/oauth2/token",
        "https://as.example.evil.example/oauth2/token",
        "/oauth2/token",
        "",
    ],
)
def test_htu_must_be_the_request_uri(htu: str) -> None:
    with pytest.raises(JwsError, match="htu"):
        check(make_proof(private_key(), htu=htu))


@pytest.mark.parametrize(
    "htu", ["https://as.example:99999/oauth2/token", "https://as.example:port/oauth2/token", "http://[::1/x"]
)
def test_a_malformed_htu_is_a_clean_refusal(htu: str) -> None:
    with pytest.raises(JwsError, match="htu"):
        check(make_proof(private_key(), htu=htu))


def test_the_iat_window() -> None:
    key = private_key()
    check(make_proof(key, iat=NOW - 60 - 30))
    check(make_proof(key, iat=NOW + 30))
    with pytest.raises(JwsError, match="window"):
        check(make_proof(key, iat=NOW - 60 - 31))
    with pytest.raises(JwsError, match="window"):
        check(make_proof(key, iat=NOW + 31))
    with pytest.raises(JwsError, match="window"):
        check(make_proof(key, iat=NOW + 86400 * 365))


@pytest.mark.parametrize("iat", [float("nan"), float("inf"), "1800000000", True])
def test_iat_must_be_a_finite_number(iat: object) -> None:
    with pytest.raises(JwsError, match="number"):
        check(make_proof(private_key(), iat=iat))


def test_ath_binds_the_access_token() -> None:
    key = private_key()
    check(make_proof(key, ath=access_token_hash("token-a")), access_token="token-a")
    with pytest.raises(JwsError, match="ath"):
        check(make_proof(key, ath=access_token_hash("token-a")), access_token="token-b")
    with pytest.raises(JwsError, match="ath"):
        check(make_proof(key), access_token="token-a")
    with pytest.raises(JwsError, match="ath"):
        check(make_proof(key, ath=["x"]), access_token="token-a")


def test_nonce_must_be_a_string() -> None:
    assert check(make_proof(private_key(), nonce="n-1")).nonce == "n-1"
    with pytest.raises(JwsError, match="nonce"):
        check(make_proof(private_key(), nonce=7))


def test_oversized_proofs_are_refused() -> None:
    with pytest.raises(JwsError, match="limit"):
        check(make_proof(private_key(), pad="x" * 5000))


def test_thumbprint_and_ath_are_computed_per_rfc() -> None:
    """ath is base64url(SHA-256(ASCII token)) without padding (RFC 9449 §4.2)."""
    assert access_token_hash("abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"


# --- server nonces (RFC 9449 §8) --------------------------------------------------------


def test_a_nonce_is_valid_in_its_window_and_the_next_only() -> None:
    nonces = NonceIssuer(b"k" * 32, lifetime=300)
    nonce = nonces.current(NOW)
    assert nonces.is_valid(nonce, NOW)
    assert nonces.is_valid(nonce, NOW + 300)
    assert not nonces.is_valid(nonce, NOW + 600 + 300)
    assert not nonces.is_valid(nonces.current(NOW + 600), NOW)  # from the future


def test_replicas_sharing_the_secret_agree_and_others_do_not() -> None:
    nonce = NonceIssuer(b"k" * 32, lifetime=300).current(NOW)
    assert NonceIssuer(b"k" * 32, lifetime=300).is_valid(nonce, NOW)
    assert not NonceIssuer(b"j" * 32, lifetime=300).is_valid(nonce, NOW)


@pytest.mark.parametrize(
    "nonce", [None, "", "x", "!" * 32, "é" * 32, "A" * 65, b64(b"\x00" * 24), b64(b"\x00" * 8 + b"\x01" * 16)]
)
def test_forged_and_malformed_nonces_are_invalid(nonce: str | None) -> None:
    assert not NonceIssuer(b"k" * 32, lifetime=300).is_valid(nonce, NOW)


def test_a_nonce_for_the_right_window_with_a_guessed_mac_is_invalid() -> None:
    nonces = NonceIssuer(b"k" * 32, lifetime=300)
    real = nonces.current(NOW)
    raw = bytearray(b64url_decode(real))
    raw[-1] ^= 1
    assert not nonces.is_valid(b64(bytes(raw)), NOW)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://AS.Example:443/a?b=c#d", "https://as.example/a"),
        ("http://as.example:80", "http://as.example/"),
        ("http://as.example:8080/a/", "http://as.example:8080/a/"),
        ("https://[::1]:443/x", "https://[::1]/x"),
    ],
)
def test_normalise_htu(url: str, expected: str) -> None:
    assert normalise_htu(url) == expected
