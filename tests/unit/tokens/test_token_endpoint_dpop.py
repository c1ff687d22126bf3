"""DPoP at the token endpoint (RFC 9449 §5, §8): binding, replay, require_dpop and server nonces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import InvalidClient, InvalidDPoPProof, InvalidRequest, UseDPoPNonce
from tessera.runtime import Runtime
from tessera.tokens.client_auth import CLIENT_ASSERTION_TYPE
from tessera.tokens.requests import build_token_request
from tests.unit.helpers import (
    Client,
    assertion,
    private_key,
    proof,
    register,
    request_token,
    token_request,
    unverified_claims,
)


def test_a_proof_binds_the_token_to_its_key(runtime: Runtime, client: Client) -> None:
    key = private_key()
    issued = request_token(runtime, client, dpop_key=key)
    assert issued.token_type == "DPoP"
    assert issued.response()["token_type"] == "DPoP"
    assert unverified_claims(issued.access_token)["cnf"] == {"jkt": key.thumbprint()}
    assert runtime.validator.verify(issued.access_token).cnf_jkt == key.thumbprint()


def test_the_dpop_key_need_not_be_the_client_key(runtime: Runtime, client: Client) -> None:
    ed = private_key("Ed25519")
    issued = request_token(runtime, client, dpop_key=ed)
    assert unverified_claims(issued.access_token)["cnf"]["jkt"] == ed.thumbprint()


def test_without_a_proof_the_token_is_a_bearer_token(runtime: Runtime, client: Client) -> None:
    issued = request_token(runtime, client)
    assert issued.token_type == "Bearer"
    assert "cnf" not in unverified_claims(issued.access_token)


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"htm": "GET"}, "htm"),
        ({"htu": "http://tessera.test/oauth2/introspect"}, "htu"),
        ({"htu": "https://tessera.test/oauth2/token"}, "htu"),
        ({"htu": "http://evil.test/oauth2/token"}, "htu"),
        ({"iat": 1_800_000_000 - 3600}, "window"),
        ({"iat": 1_800_000_000 + 3600}, "window"),
        ({"iat": float("nan")}, "number"),
    ],
)
def test_a_proof_for_another_request_or_time_is_refused(
    runtime: Runtime, client: Client, claims: dict[str, object], match: str
) -> None:
    bad = proof(runtime, private_key(), **claims)
    with pytest.raises(InvalidDPoPProof, match=match):
        request_token(runtime, client, dpop=bad)


def test_a_replayed_proof_is_refused(runtime: Runtime, client: Client) -> None:
    once = proof(runtime, private_key())
    request_token(runtime, client, dpop=once)
    with pytest.raises(InvalidDPoPProof, match="already been used"):
        request_token(runtime, client, dpop=once)


def test_a_proof_jti_reused_by_the_same_key_is_a_replay(runtime: Runtime, client: Client) -> None:
    key = private_key()
    request_token(runtime, client, dpop=proof(runtime, key, jti="same"))
    with pytest.raises(InvalidDPoPProof, match="already been used"):
        request_token(runtime, client, dpop=proof(runtime, key, jti="same"))
    # Another key's proof with that jti is another value.
    assert request_token(runtime, client, dpop=proof(runtime, private_key(), jti="same"))


def test_a_proof_carrying_the_private_key_is_refused(runtime: Runtime, client: Client) -> None:
    key = private_key()
    leaky = proof(runtime, key, header={"jwk": dict(key.as_dict(private=True))})
    with pytest.raises(InvalidDPoPProof, match="private key material"):
        request_token(runtime, client, dpop=leaky)


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(runtime: Runtime, client: Client) -> None:
    claimed = private_key()
    forged = proof(runtime, private_key(), header={"jwk": dict(claimed.as_dict(private=False))})
    with pytest.raises(InvalidDPoPProof, match="signature"):
        request_token(runtime, client, dpop=forged)


def test_two_dpop_headers_are_refused(runtime: Runtime) -> None:
    with pytest.raises(InvalidRequest, match="more than one dpop"):
        build_token_request(
            [("grant_type", "client_credentials")],
            method="POST",
            url=runtime.settings.token_endpoint,
            authorization=None,
            dpop_headers=[proof(runtime, private_key()), proof(runtime, private_key())],
            client_ip=None,
        )


def test_an_agent_that_requires_dpop_gets_no_bearer_token(runtime: Runtime) -> None:
    strict = register(runtime, require_dpop=True)
    with pytest.raises(InvalidDPoPProof, match="requires a dpop proof"):
        request_token(runtime, strict)
    assert request_token(runtime, strict, dpop_key=private_key()).token_type == "DPoP"


def test_client_authentication_comes_before_the_proof(runtime: Runtime, client: Client) -> None:
    """A bad assertion with a good proof fails as invalid_client, and burns neither value."""
    key = private_key()
    good_proof = proof(runtime, key)
    pairs = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion(runtime, client, key=private_key())),
    ]
    with pytest.raises(InvalidClient):
        runtime.token_endpoint.handle(token_request(runtime, pairs, dpop=good_proof))
    assert request_token(runtime, client, dpop=good_proof).token_type == "DPoP"


# --- server nonces -------------------------------------------------------------------------


@pytest.fixture
def nonce_runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update={"dpop_nonce_required": True}), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


def test_the_nonce_flow(nonce_runtime: Runtime, clock: ManualClock) -> None:
    rt = nonce_runtime
    client = register(rt)
    key = private_key()
    with pytest.raises(UseDPoPNonce) as challenge:
        request_token(rt, client, dpop=proof(rt, key))
    assert challenge.value.status == 400
    nonce = challenge.value.headers["DPoP-Nonce"]
    assert nonce == rt.token_endpoint.fresh_nonce()
    issued = request_token(rt, client, dpop=proof(rt, key, nonce=nonce))
    assert issued.token_type == "DPoP"
    # Still good in the next window, stale after that.
    clock.advance(rt.settings.dpop_nonce_lifetime)
    assert request_token(rt, client, dpop=proof(rt, key, nonce=nonce))
    clock.advance(rt.settings.dpop_nonce_lifetime)
    with pytest.raises(UseDPoPNonce) as stale:
        request_token(rt, client, dpop=proof(rt, key, nonce=nonce))
    assert stale.value.headers["DPoP-Nonce"] != nonce


@pytest.mark.parametrize("nonce", ["made-up", "", "A" * 32])
def test_invented_nonces_are_refused(nonce_runtime: Runtime, nonce: str) -> None:
    client = register(nonce_runtime)
    with pytest.raises(UseDPoPNonce):
        request_token(nonce_runtime, client, dpop=proof(nonce_runtime, private_key(), nonce=nonce))


def test_a_nonce_does_not_make_a_proof_reusable(nonce_runtime: Runtime) -> None:
    client = register(nonce_runtime)
    nonce = nonce_runtime.token_endpoint.fresh_nonce()
    assert nonce is not None
    once = proof(nonce_runtime, private_key(), nonce=nonce)
    request_token(nonce_runtime, client, dpop=once)
    with pytest.raises(InvalidDPoPProof, match="already been used"):
        request_token(nonce_runtime, client, dpop=once)


def test_without_nonces_configured_none_is_offered(runtime: Runtime) -> None:
    assert runtime.token_endpoint.fresh_nonce() is None
