"""The resource-server verifier (RFC 9068 §4, RFC 9449 §7): tokens and their DPoP proofs, locally."""

from __future__ import annotations

import pytest

from tessera.clock import ManualClock
from tessera.runtime import Runtime
from tessera.sdk.verifier import ReplayCache, TokenVerifier, VerificationError, VerifiedRequest
from tests.unit.helpers import Client, PrivateKey, local_verifier, private_key, proof, request_token

API = "https://api.example/tickets"


def bound_token(runtime: Runtime, client: Client) -> tuple[str, PrivateKey]:
    key = private_key()
    return request_token(runtime, client, dpop_key=key).access_token, key


def call(runtime: Runtime, authorization: str | None, dpop: str | list[str] | None = None) -> VerifiedRequest:
    """A GET of ``API`` with these headers, through a fresh verifier holding the current JWKS."""
    return local_verifier(runtime).verify(authorization, method="GET", url=API, dpop=dpop)


def refused(
    runtime: Runtime, authorization: str | None, dpop: str | list[str] | None = None
) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        call(runtime, authorization, dpop)
    assert caught.value.status == 401
    return caught.value


def test_a_bearer_token(runtime: Runtime, client: Client) -> None:
    token = request_token(runtime, client).access_token
    verified = call(runtime, f"Bearer {token}")
    assert verified.agent_id == client.id
    assert verified.dpop_jkt is None
    assert call(runtime, f"bearer {token}").agent_id == client.id


def test_a_dpop_bound_token_with_its_proof(runtime: Runtime, client: Client) -> None:
    token, key = bound_token(runtime, client)
    verified = call(runtime, f"DPoP {token}", proof(runtime, key, method="GET", url=API, access_token=token))
    assert verified.dpop_jkt == key.thumbprint() == verified.token.cnf_jkt


def test_query_and_fragment_are_ignored_for_htu(runtime: Runtime, client: Client) -> None:
    token, key = bound_token(runtime, client)
    dpop = proof(runtime, key, method="GET", url=API, access_token=token)
    verifier = local_verifier(runtime)
    assert verifier.verify(f"DPoP {token}", method="GET", url=API + "?page=2", dpop=dpop)


def test_a_bound_token_presented_as_bearer_is_refused(runtime: Runtime, client: Client) -> None:
    token, key = bound_token(runtime, client)
    error = refused(
        runtime, f"Bearer {token}", proof(runtime, key, method="GET", url=API, access_token=token)
    )
    assert error.error == "invalid_token"
    assert error.www_authenticate.startswith("DPoP ")
    assert 'algs="ES256 EdDSA Ed25519"' in error.www_authenticate


def test_an_unbound_token_presented_as_dpop_is_refused(runtime: Runtime, client: Client) -> None:
    token = request_token(runtime, client).access_token
    assert refused(runtime, f"DPoP {token}", proof(runtime, private_key(), method="GET", url=API)).error == (
        "invalid_token"
    )


@pytest.mark.parametrize("count", [0, 2])
def test_exactly_one_proof(runtime: Runtime, client: Client, count: int) -> None:
    token, key = bound_token(runtime, client)
    proofs = [proof(runtime, key, method="GET", url=API, access_token=token) for _ in range(count)]
    assert refused(runtime, f"DPoP {token}", proofs).error == "invalid_dpop_proof"


def test_ath_must_match_the_presented_token(runtime: Runtime, client: Client) -> None:
    token, key = bound_token(runtime, client)
    other = request_token(runtime, client, dpop_key=key).access_token
    error = refused(runtime, f"DPoP {token}", proof(runtime, key, method="GET", url=API, access_token=other))
    assert "ath" in error.description
    assert "ath" in refused(runtime, f"DPoP {token}", proof(runtime, key, method="GET", url=API)).description


def test_the_proof_key_must_be_the_bound_key(runtime: Runtime, client: Client) -> None:
    token, _ = bound_token(runtime, client)
    thief = private_key()
    error = refused(
        runtime, f"DPoP {token}", proof(runtime, thief, method="GET", url=API, access_token=token)
    )
    assert error.description == "dpop proof key does not match the token"


def test_a_replayed_proof_is_refused(runtime: Runtime, client: Client) -> None:
    token, key = bound_token(runtime, client)
    verifier = local_verifier(runtime)
    dpop = proof(runtime, key, method="GET", url=API, access_token=token)
    assert verifier.verify(f"DPoP {token}", method="GET", url=API, dpop=dpop)
    with pytest.raises(VerificationError, match="already been used"):
        verifier.verify(f"DPoP {token}", method="GET", url=API, dpop=dpop)


@pytest.mark.parametrize(
    ("method", "url"),
    [("POST", API), ("GET", "https://api.example/other"), ("GET", "http://api.example/tickets")],
)
def test_the_proof_must_be_for_this_request(runtime: Runtime, client: Client, method: str, url: str) -> None:
    token, key = bound_token(runtime, client)
    dpop = proof(runtime, key, method="GET", url=API, access_token=token)
    with pytest.raises(VerificationError, match=r"htm|htu") as caught:
        local_verifier(runtime).verify(f"DPoP {token}", method=method, url=url, dpop=dpop)
    assert caught.value.error == "invalid_dpop_proof"


def test_a_stale_proof_is_refused(runtime: Runtime, client: Client, clock: ManualClock) -> None:
    token, key = bound_token(runtime, client)
    dpop = proof(runtime, key, method="GET", url=API, access_token=token)
    clock.advance(60 + 30 + 1)
    assert "window" in refused(runtime, f"DPoP {token}", dpop).description


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "Bearer  "])
def test_malformed_authorization_headers(runtime: Runtime, header: str | None) -> None:
    error = refused(runtime, header)
    assert error.error in ("invalid_request", "invalid_token")


def test_expiry_within_and_beyond_the_leeway(runtime: Runtime, client: Client, clock: ManualClock) -> None:
    token = request_token(runtime, client).access_token
    verifier = local_verifier(runtime)
    clock.advance(runtime.settings.access_token_ttl + 30)
    assert verifier.verify_token(token)
    assert runtime.validator.verify(token)
    clock.advance(1)
    with pytest.raises(VerificationError, match="expired"):
        verifier.verify_token(token)


def test_the_replay_cache_is_bounded_and_forgets_expired_entries() -> None:
    cache = ReplayCache(max_entries=2)
    assert cache.first_use("a", expires_at=100, now=0)
    assert not cache.first_use("a", expires_at=100, now=0)
    assert cache.first_use("b", expires_at=100, now=0)
    assert cache.first_use("c", expires_at=100, now=0)  # evicts the oldest
    assert not cache.first_use("c", expires_at=100, now=0)
    assert cache.first_use("c", expires_at=300, now=200)  # expired entries are forgotten


def test_a_verifier_always_checks_an_audience(runtime: Runtime, client: Client) -> None:
    assert TokenVerifier.for_server("https://as.example/").audience == "https://as.example"
    assert TokenVerifier.for_server("https://as.example", audience=API).audience == API
    for_api = request_token(runtime, client, resource=API).access_token
    with pytest.raises(VerificationError, match="audience"):
        local_verifier(runtime).verify_token(for_api)  # audience defaults to the issuer
