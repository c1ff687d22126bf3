"""``private_key_jwt`` client authentication (RFC 7523 §3, RFC 7521 §4.2) at the token endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.clock import ManualClock
from tessera.errors import InvalidClient, InvalidRequest, TesseraError
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tessera.sdk.proofs import generate_private_jwk, public_jwk
from tessera.tokens.client_auth import CLIENT_ASSERTION_TYPE
from tessera.tokens.issuer import IssuedToken
from tests.unit.helpers import (
    DROP,
    Client,
    assertion,
    b64_json,
    client_auth,
    private_key,
    register,
    token_request,
    unverified_claims,
)


def exchange(runtime: Runtime, client_assertion: str, *extra: tuple[str, str]) -> IssuedToken:
    pairs = [("grant_type", "client_credentials"), *client_auth(client_assertion), *extra]
    return runtime.token_endpoint.handle(token_request(runtime, pairs))


def refused(runtime: Runtime, client_assertion: str, match: str, *extra: tuple[str, str]) -> TesseraError:
    with pytest.raises(InvalidClient, match=match) as caught:
        exchange(runtime, client_assertion, *extra)
    assert caught.value.status == 401
    return caught.value


def test_a_valid_assertion_gets_a_token(runtime: Runtime, client: Client) -> None:
    issued = exchange(runtime, assertion(runtime, client))
    claims = unverified_claims(issued.access_token)
    assert claims["sub"] == claims["client_id"] == client.id
    assert issued.token_type == "Bearer"


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_keys_work_under_both_algorithm_names(runtime: Runtime, alg: str) -> None:
    ed = register(runtime, kind="Ed25519")
    issued = exchange(runtime, assertion(runtime, ed, header={"alg": alg}))
    assert unverified_claims(issued.access_token)["client_id"] == ed.id


def test_an_ed25519_key_refuses_es256(runtime: Runtime) -> None:
    ed = register(runtime, kind="Ed25519")
    refused(runtime, assertion(runtime, ed, header={"alg": "ES256"}, key=private_key()), "not allowed")


def test_an_es256_key_refuses_eddsa(runtime: Runtime, client: Client) -> None:
    refused(
        runtime,
        assertion(runtime, client, header={"alg": "EdDSA"}, key=private_key("Ed25519")),
        "not allowed",
    )


def test_aud_must_be_exactly_the_issuer(runtime: Runtime, client: Client) -> None:
    refused(
        runtime, assertion(runtime, client, aud=runtime.settings.token_endpoint), "aud must be the issuer"
    )
    refused(runtime, assertion(runtime, client, aud=[runtime.issuer, "https://other.example"]), "aud")
    refused(runtime, assertion(runtime, client, aud=runtime.issuer + "/"), "aud")
    refused(runtime, assertion(runtime, client, aud=DROP), "aud")
    assert exchange(runtime, assertion(runtime, client, aud=[runtime.issuer]))


def test_lifetime_is_capped(runtime: Runtime, client: Client) -> None:
    now = int(runtime.clock.now())
    cap = runtime.settings.assertion_max_lifetime
    refused(runtime, assertion(runtime, client, exp=now + cap + 31), "lifetime")
    refused(runtime, assertion(runtime, client, iat=DROP, exp=now + cap + 31), "lifetime")
    refused(runtime, assertion(runtime, client, iat=now - 3600, exp=now + 60), "lifetime")
    assert exchange(runtime, assertion(runtime, client, exp=now + cap))


@pytest.mark.parametrize("claim", ["jti", "exp", "iss", "sub"])
def test_required_claims(runtime: Runtime, client: Client, claim: str) -> None:
    expected = {"jti": "claim 'jti'", "exp": "claim 'exp'", "iss": "claim 'iss'", "sub": "claim 'sub'"}
    refused(runtime, assertion(runtime, client, **{claim: DROP}), expected[claim])


def test_an_expired_assertion_is_refused(runtime: Runtime, client: Client, clock: ManualClock) -> None:
    stale = assertion(runtime, client)
    clock.advance(60 + runtime.settings.clock_leeway + 1)
    refused(runtime, stale, "expired")


def test_a_future_assertion_is_refused(runtime: Runtime, client: Client) -> None:
    now = int(runtime.clock.now())
    refused(runtime, assertion(runtime, client, iat=now + 600, exp=now + 660), "future")
    refused(runtime, assertion(runtime, client, nbf=now + 600), "nbf")


def test_iss_and_sub_must_both_be_the_client(runtime: Runtime, client: Client) -> None:
    other = register(runtime)
    refused(runtime, assertion(runtime, client, iss=other.id), "iss and sub")
    refused(runtime, assertion(runtime, client, sub=other.id), "iss and sub")


def test_client_id_must_match_the_assertion(runtime: Runtime, client: Client) -> None:
    other = register(runtime)
    refused(runtime, assertion(runtime, client), "does not match", ("client_id", other.id))
    assert exchange(runtime, assertion(runtime, client), ("client_id", client.id))


def test_an_unknown_client_is_refused(runtime: Runtime, client: Client) -> None:
    refused(runtime, assertion(runtime, client, iss="agt_nobody", sub="agt_nobody"), "unknown client")


def test_another_clients_assertion_cannot_be_signed_with_my_key(runtime: Runtime, client: Client) -> None:
    victim = register(runtime)
    forged = assertion(runtime, client, iss=victim.id, sub=victim.id, header={"kid": victim.kid})
    refused(runtime, forged, "signature")


def test_a_signature_by_another_key_is_refused(runtime: Runtime, client: Client) -> None:
    refused(runtime, assertion(runtime, client, key=private_key()), "signature")


def test_an_embedded_jwk_does_not_choose_the_key(runtime: Runtime, client: Client) -> None:
    attacker = private_key()
    jwk = dict(attacker.as_dict(private=False))
    refused(runtime, assertion(runtime, client, header={"jwk": jwk}, key=attacker), "signature")
    refused(
        runtime,
        assertion(runtime, client, header={"jwk": jwk, "kid": attacker.thumbprint()}, key=attacker),
        "no usable key",
    )
    refused(
        runtime,
        assertion(runtime, client, header={"jku": "https://evil.test/jwks"}, key=attacker),
        "signature",
    )


@pytest.mark.parametrize("alg", ["none", "NONE", "HS256"])
def test_alg_none_and_hmac_assertions_are_refused(runtime: Runtime, client: Client, alg: str) -> None:
    payload = assertion(runtime, client).split(".")[1]
    forged = f"{b64_json({'alg': alg, 'kid': client.kid, 'typ': 'JWT'})}.{payload}.AAAA"
    refused(runtime, forged, f"alg '{alg.lower() if alg != 'HS256' else alg}'")


def test_unknown_crit_is_refused(runtime: Runtime, client: Client) -> None:
    refused(runtime, assertion(runtime, client, header={"crit": ["x"], "x": 1}), "critical")


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "application/at+jwt", "JOSE"])
def test_other_token_types_are_not_assertions(runtime: Runtime, client: Client, typ: str) -> None:
    refused(runtime, assertion(runtime, client, header={"typ": typ}), "not a client assertion")


@pytest.mark.parametrize("typ", ["JWT", DROP, "client-authentication+jwt"])
def test_assertion_types_that_are_accepted(runtime: Runtime, client: Client, typ: Any) -> None:
    assert exchange(runtime, assertion(runtime, client, header={"typ": typ}))


def test_a_replayed_jti_is_refused(runtime: Runtime, client: Client) -> None:
    once = assertion(runtime, client)
    exchange(runtime, once)
    refused(runtime, once, "already been used")
    # A fresh assertion reusing the jti is a replay too.
    jti = unverified_claims(once)["jti"]
    refused(runtime, assertion(runtime, client, jti=jti), "already been used")


def test_the_same_jti_from_two_clients_is_two_values(runtime: Runtime, client: Client) -> None:
    other = register(runtime)
    exchange(runtime, assertion(runtime, client, jti="shared"))
    assert exchange(runtime, assertion(runtime, other, jti="shared"))


def test_a_removed_key_no_longer_authenticates(runtime: Runtime, client: Client) -> None:
    runtime.agents.remove_key(client.id, client.kid)
    refused(runtime, assertion(runtime, client), "no usable key")


def test_an_expired_key_no_longer_authenticates(runtime: Runtime, clock: ManualClock) -> None:
    jwk = generate_private_jwk()
    agent = runtime.agents.create(
        NewAgent(
            name="expiring key",
            owner="o@example.com",
            jwks=(public_jwk(jwk),),
            key_expires_at=clock.now() + 3600,
        )
    )
    client = Client(agent, jwk)
    assert exchange(runtime, assertion(runtime, client))
    clock.advance(3600)
    refused(runtime, assertion(runtime, client), "no usable key")


def test_rotating_keys_with_overlap(runtime: Runtime, client: Client) -> None:
    new_jwk = generate_private_jwk("Ed25519")
    runtime.agents.add_key(client.id, public_jwk(new_jwk))
    rotated = Client(runtime.agents.get(client.id), new_jwk)
    assert exchange(runtime, assertion(runtime, client))
    assert exchange(runtime, assertion(runtime, rotated))
    # With two keys, an assertion must name its kid.
    refused(runtime, assertion(runtime, client, header={"kid": DROP}), "several keys")
    runtime.agents.remove_key(client.id, client.kid)
    refused(runtime, assertion(runtime, client), "no usable key")
    assert exchange(runtime, assertion(runtime, rotated, header={"kid": DROP}))


def test_the_assertion_type_must_be_jwt_bearer(runtime: Runtime, client: Client) -> None:
    pairs = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
        ("client_assertion", assertion(runtime, client)),
    ]
    with pytest.raises(InvalidClient, match="client_assertion_type"):
        runtime.token_endpoint.handle(token_request(runtime, pairs))
    with pytest.raises(InvalidRequest, match="missing client_assertion"):
        runtime.token_endpoint.handle(
            token_request(
                runtime,
                [("grant_type", "client_credentials"), ("client_assertion_type", CLIENT_ASSERTION_TYPE)],
            )
        )


def test_authentication_is_required_and_only_one_method(runtime: Runtime, client: Client) -> None:
    with pytest.raises(InvalidClient, match="authentication required"):
        runtime.token_endpoint.handle(token_request(runtime, [("grant_type", "client_credentials")]))
    pairs = [
        ("grant_type", "client_credentials"),
        *client_auth(assertion(runtime, client)),
        ("client_secret", "x"),
    ]
    with pytest.raises(InvalidRequest, match="more than one"):
        runtime.token_endpoint.handle(token_request(runtime, pairs))


def test_oversized_assertions_are_refused(runtime: Runtime, client: Client) -> None:
    refused(runtime, assertion(runtime, client, pad="x" * 9000), "limit")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_exp_is_refused(runtime: Runtime, client: Client, value: float) -> None:
    refused(runtime, assertion(runtime, client, exp=value), "number")


@pytest.mark.parametrize("header", [{"typ": 1}, {"typ": ["JWT"]}, {"typ": None}, {"kid": 7}, {"kid": ["k"]}])
def test_typ_and_kid_must_be_strings(runtime: Runtime, client: Client, header: dict[str, Any]) -> None:
    """A non-string typ or kid is malformed, not 'absent' (RFC 7515 §4.1.4, §4.1.9)."""
    refused(runtime, assertion(runtime, client, header=header), "must be a string")
