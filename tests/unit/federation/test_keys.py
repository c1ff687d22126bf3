"""External signing keys: algorithms per key type, short RSA keys, key selection without a kid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from tessera.federation.keys import DEFAULT_ALGORITHMS, JwksError, parse_jwks, parse_key, select_key
from tessera.runtime import Runtime
from tessera.tokens.jose import parse_compact
from tests.federation_issuer import LocalIssuer
from tests.unit.federation.conftest import trust
from tests.unit.federation.test_jwt_bearer import exchange, refused
from tests.unit.helpers import b64, unverified_claims


@pytest.fixture(params=["RS256", "EdDSA"])
def other_alg_issuer(request: pytest.FixtureRequest) -> Iterator[LocalIssuer]:
    issuer = LocalIssuer(alg=request.param).start()
    yield issuer
    issuer.stop()


def test_rsa_and_eddsa_issuers(runtime: Runtime, other_alg_issuer: LocalIssuer) -> None:
    trust(runtime, other_alg_issuer)
    issued = exchange(runtime, other_alg_issuer.token(now=runtime.clock.now()))
    assert unverified_claims(issued.access_token)["sub"].startswith("fed_")


def test_an_issuer_limited_to_es256_refuses_rs256(runtime: Runtime) -> None:
    issuer = LocalIssuer(alg="RS256").start()
    try:
        trust(runtime, issuer, algorithms=["ES256"])
        error = refused(runtime, issuer.token(now=runtime.clock.now()))
        assert (
            error.description == f"invalid assertion: alg 'RS256' is not allowed for issuer '{issuer.issuer}'"
        )
    finally:
        issuer.stop()


def test_short_rsa_keys_are_refused() -> None:
    # A 1024-bit modulus, written by hand: the refusal must come before any key is built.
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
    short = {"kty": "RSA", "n": b64((numbers.n >> 1024).to_bytes(128, "big")), "e": "AQAB"}
    with pytest.raises(JwksError, match="rsa key is shorter than 2048 bits"):
        parse_key(short, DEFAULT_ALGORITHMS)


def test_a_key_declaring_its_alg_verifies_only_that_alg() -> None:
    jwk = dict(RSAKey.generate_key(2048).as_dict(private=False))
    jwk["alg"] = "PS256"
    assert parse_key(jwk, ("PS256", "RS256")).algorithms == ("PS256",)
    with pytest.raises(JwksError, match="no allowed algorithm fits a RSA key"):
        parse_key(jwk, DEFAULT_ALGORITHMS)
    with pytest.raises(JwksError, match="key alg 'ES256' does not fit a RSA key"):
        parse_key({**jwk, "alg": "ES256"}, DEFAULT_ALGORITHMS)
    with pytest.raises(JwksError, match="key use 'enc' is not 'sig'"):
        parse_key({**jwk, "alg": "RS256", "use": "enc"}, DEFAULT_ALGORITHMS)


def test_fetched_sets_skip_unusable_keys_and_refuse_duplicate_kids() -> None:
    issuer = LocalIssuer()
    jwks = issuer.jwks()
    mixed = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "RSA", "use": "enc"}, *jwks["keys"]]}
    assert [k.kid for k in parse_jwks(mixed, DEFAULT_ALGORITHMS, strict=False)] == [issuer.kid]
    with pytest.raises(JwksError, match="two keys share one kid"):
        parse_jwks({"keys": jwks["keys"] * 2}, DEFAULT_ALGORITHMS, strict=False)
    with pytest.raises(JwksError, match="holds no usable signing key"):
        parse_jwks({"keys": mixed["keys"][:2]}, DEFAULT_ALGORITHMS, strict=False)
    with pytest.raises(JwksError, match="more than 100 keys"):
        parse_jwks({"keys": jwks["keys"] * 101}, DEFAULT_ALGORITHMS, strict=False)


def test_without_a_kid_only_a_single_fitting_key_is_used() -> None:
    issuer = LocalIssuer()
    keys = parse_jwks(issuer.jwks(), DEFAULT_ALGORITHMS, strict=True)
    token = parse_compact(issuer.token(now=0, header={"kid": None}), max_bytes=16384)
    assert select_key(keys, token) == keys[0]
    other = LocalIssuer()
    both = parse_jwks({"keys": issuer.jwks()["keys"] + other.jwks()["keys"]}, DEFAULT_ALGORITHMS, strict=True)
    assert select_key(both, token) is None
