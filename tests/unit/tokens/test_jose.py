"""The strict compact-JWS layer every token, assertion and proof goes through."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.identity.keys import PublicKey, import_public_key
from tessera.tokens.jose import (
    JwsError,
    audiences,
    check_lifetime,
    number_claim,
    parse_compact,
    string_claim,
    verify_signature,
)
from tests.unit.helpers import PrivateKey, b64, b64_json, private_key, sign_jwt

NOW = 1_800_000_000.0
CLAIMS = {"iss": "x", "exp": NOW + 60}
ES256_HEADER = b64_json({"alg": "ES256"})


def public_of(key: PrivateKey) -> PublicKey:
    return import_public_key(dict(key.as_dict(private=False)))


def parse_claims(token: str) -> dict[str, Any]:
    return parse_compact(token, max_bytes=8192).claims


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64_json(header)}.{b64_json(claims)}.{b64(signature)}"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_refused(alg: str) -> None:
    with pytest.raises(JwsError, match="none"):
        parse_compact(unsigned({"alg": alg}, CLAIMS), max_bytes=8192)


@pytest.mark.parametrize("alg", ["HS256", "HS512", "RS256", "PS256", "ES384", "ES256K", "Ed448", "", "es256"])
def test_algorithms_other_than_es256_and_eddsa_are_refused(alg: str) -> None:
    with pytest.raises(JwsError):
        parse_compact(unsigned({"alg": alg}, CLAIMS, b"x" * 32), max_bytes=8192)


@pytest.mark.parametrize("header", [{}, {"alg": None}, {"alg": 256}, {"alg": ["ES256"]}])
def test_a_missing_or_non_string_alg_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises(JwsError, match="no alg"):
        parse_compact(unsigned(header, CLAIMS), max_bytes=8192)


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "exp", ["urn:example:unknown"]])
def test_any_crit_header_is_refused(crit: object) -> None:
    key = private_key()
    token = sign_jwt({"alg": "ES256", "crit": crit, "exp": 1}, CLAIMS, key)
    with pytest.raises(JwsError, match="critical"):
        parse_compact(token, max_bytes=8192)


def test_unencoded_payload_option_is_refused() -> None:
    with pytest.raises(JwsError, match="b64"):
        parse_compact(unsigned({"alg": "ES256", "b64": False}, CLAIMS), max_bytes=8192)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # a JWE is not a JWS
        "!!!.e30.",
        f"{b64(b'not json')}.{b64_json({})}.",
        f"{b64_json(['ES256'])}.{b64_json({})}.",
        ES256_HEADER + "." + b64(b"[1, 2]") + ".",
        ES256_HEADER + "." + b64(b"\xff\xfe") + ".",
    ],
)
def test_malformed_compact_serialisations_are_refused(value: str) -> None:
    with pytest.raises(JwsError):
        parse_compact(value, max_bytes=8192)


def test_size_is_bounded_before_decoding() -> None:
    token = unsigned({"alg": "ES256"}, {"pad": "x" * 9000})
    with pytest.raises(JwsError, match="over the 8192-byte limit"):
        parse_compact(token, max_bytes=8192)


def test_an_oversized_header_is_refused() -> None:
    with pytest.raises(JwsError, match="header is too large"):
        parse_compact(unsigned({"alg": "ES256", "pad": "x" * 3000}, CLAIMS), max_bytes=65536)


@pytest.mark.parametrize("depth", [2000, 5000])
def test_deeply_nested_json_is_a_clean_refusal(depth: int) -> None:
    """Nesting that would exhaust the parser's recursion must be a JwsError, not a crash."""
    payload = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    token = f"{ES256_HEADER}.{b64(payload)}.AA"
    with pytest.raises(JwsError):
        parse_compact(token, max_bytes=65536)


@pytest.mark.parametrize("junk", ["!", "=", "*", " ", "%"])
def test_signature_segment_must_be_strict_base64url(junk: str) -> None:
    """Characters outside the base64url alphabet are an error, not silently skipped (no malleability)."""
    key = private_key()
    token = sign_jwt({"alg": "ES256"}, CLAIMS, key)
    parse_compact(token, max_bytes=8192)
    with pytest.raises(JwsError):
        parse_compact(token + junk, max_bytes=8192)


def test_header_segment_must_be_strict_base64url() -> None:
    header, payload, signature = sign_jwt({"alg": "ES256"}, CLAIMS, private_key()).split(".")
    with pytest.raises(JwsError):
        parse_compact(f"{header}+.{payload}.{signature}", max_bytes=8192)


def test_a_good_signature_verifies_and_a_tampered_payload_does_not() -> None:
    key = private_key()
    token = sign_jwt({"alg": "ES256"}, CLAIMS, key)
    verify_signature(parse_compact(token, max_bytes=8192), public_of(key), ("ES256",))
    header, _, signature = token.split(".")
    tampered = f"{header}.{b64_json({**CLAIMS, 'iss': 'y'})}.{signature}"
    with pytest.raises(JwsError, match="signature verification failed"):
        verify_signature(parse_compact(tampered, max_bytes=8192), public_of(key), ("ES256",))


def test_only_the_algorithms_allowed_for_the_key_are_used() -> None:
    ed = private_key("Ed25519")
    token = sign_jwt({"alg": "EdDSA"}, CLAIMS, ed)
    with pytest.raises(JwsError, match="not allowed for this key"):
        verify_signature(parse_compact(token, max_bytes=8192), public_of(ed), ("ES256",))


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_verifies_under_both_algorithm_names(alg: str) -> None:
    ed = private_key("Ed25519")
    token = sign_jwt({"alg": alg}, CLAIMS, ed)
    verify_signature(parse_compact(token, max_bytes=8192), public_of(ed), ("EdDSA", "Ed25519"))


def test_a_key_of_the_wrong_type_for_the_alg_fails_cleanly() -> None:
    ec = private_key()
    token = sign_jwt({"alg": "EdDSA"}, CLAIMS, private_key("Ed25519"))
    with pytest.raises(JwsError):
        verify_signature(parse_compact(token, max_bytes=8192), public_of(ec), ("EdDSA",))


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\x01" * 63, b"\xff" * 128])
def test_garbage_signatures_fail_cleanly(signature: bytes) -> None:
    key = private_key()
    token = unsigned({"alg": "ES256"}, CLAIMS, signature)
    with pytest.raises(JwsError, match="signature verification failed"):
        verify_signature(parse_compact(token, max_bytes=8192), public_of(key), ("ES256",))


# --- claims --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "1", [1], {"a": 1}, float("nan"), float("inf"), -float("inf")])
def test_number_claims_must_be_finite_numbers(value: object) -> None:
    with pytest.raises(JwsError, match="must be a number"):
        number_claim({"exp": value}, "exp")


def test_a_huge_integer_claim_is_refused_not_crashing() -> None:
    with pytest.raises(JwsError):
        number_claim({"exp": 10**400}, "exp")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_json_numbers_never_pass_as_times(literal: bytes) -> None:
    payload = b'{"exp":' + literal + b',"iat":' + literal + b"}"
    token = f"{ES256_HEADER}.{b64(payload)}.AA"
    with pytest.raises(JwsError, match=r"must be a number|malformed"):
        check_lifetime(parse_claims(token), now=NOW, leeway=30, max_lifetime=300)


def test_string_claims_are_required_non_empty_and_bounded() -> None:
    assert string_claim({"sub": "a"}, "sub") == "a"
    for claims in ({}, {"sub": ""}, {"sub": 1}, {"sub": ["a"]}, {"sub": "x" * 513}):
        with pytest.raises(JwsError):
            string_claim(claims, "sub")


def test_audiences_accepts_a_string_or_a_non_empty_string_array() -> None:
    assert audiences({"aud": "a"}) == ["a"]
    assert audiences({"aud": ["a", "b"]}) == ["a", "b"]
    for bad in ({}, {"aud": []}, {"aud": [1]}, {"aud": 1}, {"aud": {"a": 1}}):
        with pytest.raises(JwsError):
            audiences(bad)


def test_exp_is_required() -> None:
    with pytest.raises(JwsError, match="missing claim 'exp'"):
        check_lifetime({"iat": NOW}, now=NOW, leeway=30)


def test_expiry_honours_the_leeway_and_no_more() -> None:
    claims = {"exp": NOW - 30, "iat": NOW - 90}
    assert check_lifetime(claims, now=NOW, leeway=30) == (NOW - 30, NOW - 90)
    with pytest.raises(JwsError, match="expired"):
        check_lifetime({"exp": NOW - 31}, now=NOW, leeway=30)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_future_nbf_and_iat_are_refused_beyond_the_leeway(claim: str) -> None:
    check_lifetime({"exp": NOW + 600, claim: NOW + 30}, now=NOW, leeway=30)
    with pytest.raises(JwsError, match=r"not yet valid|in the future"):
        check_lifetime({"exp": NOW + 10**6, claim: NOW + 31}, now=NOW, leeway=30)
    with pytest.raises(JwsError):
        check_lifetime({"exp": NOW + 10**9, claim: NOW + 10**8}, now=NOW, leeway=30)


def test_lifetime_is_capped_from_iat_or_from_now() -> None:
    check_lifetime({"iat": NOW, "exp": NOW + 300}, now=NOW, leeway=0, max_lifetime=300)
    with pytest.raises(JwsError, match="lifetime exceeds 300"):
        check_lifetime({"iat": NOW, "exp": NOW + 301}, now=NOW, leeway=0, max_lifetime=300)
    with pytest.raises(JwsError, match="lifetime exceeds 300"):
        check_lifetime({"exp": NOW + 301}, now=NOW, leeway=0, max_lifetime=300)
    with pytest.raises(JwsError, match="lifetime exceeds"):  # an old iat cannot stretch the window
        check_lifetime({"iat": NOW - 10_000, "exp": NOW + 60}, now=NOW, leeway=0, max_lifetime=300)


@pytest.mark.parametrize("member", ["typ", "kid", "cty"])
@pytest.mark.parametrize("value", [1, None, ["x"], {"a": 1}, True])
def test_string_header_members_must_be_strings(member: str, value: object) -> None:
    with pytest.raises(JwsError, match=f"jws header '{member}' must be a string"):
        parse_compact(unsigned({"alg": "ES256", member: value}, CLAIMS, b"x" * 64), max_bytes=8192)
