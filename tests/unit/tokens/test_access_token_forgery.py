"""Forged and confused access tokens (RFC 9068 §4, RFC 8725): refused by the server and the SDK alike.

Each forgery changes one thing about a genuine token and, where a signature is
needed, is signed with the server's own signing key, so the one change is what
gets it refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tessera.runtime import Runtime
from tessera.sdk.verifier import JwksCache, TokenVerifier, VerificationError
from tessera.tokens.introspection import Caller
from tessera.tokens.jose import JwsError
from tests.unit.helpers import (
    DROP,
    Client,
    PrivateKey,
    b64,
    b64_json,
    local_verifier,
    merged,
    private_key,
    request_token,
    sign_jwt,
    unverified_claims,
)


def server_key(runtime: Runtime) -> tuple[PrivateKey, str]:
    key = runtime.keyring().signing_key(runtime.clock.now())
    assert key is not None
    return key.private_key, key.kid


def genuine(runtime: Runtime, client: Client, **params: str) -> str:
    return request_token(runtime, client, **params).access_token


def forge(
    runtime: Runtime,
    client: Client,
    *,
    header: dict[str, Any] | None = None,
    key: PrivateKey | None = None,
    **claims: Any,
) -> str:
    """A token like a genuine one, with these header members and claims changed."""
    real = unverified_claims(genuine(runtime, client))
    our_key, kid = server_key(runtime)
    base_header = {"alg": "ES256", "typ": "at+jwt", "kid": kid}
    return sign_jwt(merged(base_header, header or {}), merged(real, claims), key or our_key)


def assert_refused(runtime: Runtime, token: str, match: str | None = None) -> None:
    """Refused by server-side validation, by introspection and by the SDK's local verifier."""
    with pytest.raises(JwsError, match=match):
        runtime.validator.verify(token)
    assert runtime.introspector.introspect(token, Caller(admin=True))[0] == {"active": False}
    with pytest.raises(VerificationError, match=match) as refused:
        local_verifier(runtime).verify(f"Bearer {token}", method="GET", url="https://api.example/x")
    assert refused.value.error == "invalid_token"


def test_a_genuine_token_is_accepted_everywhere(runtime: Runtime, client: Client) -> None:
    token = genuine(runtime, client)
    assert runtime.validator.verify(token).client_id == client.id
    body, _ = runtime.introspector.introspect(token, Caller(admin=True))
    assert body["active"] is True
    assert body["client_id"] == client.id
    verified = local_verifier(runtime).verify(f"Bearer {token}", method="GET", url="https://api.example/x")
    assert verified.agent_id == client.id
    assert verified.scopes == ("tickets:read", "tickets:write")


def test_the_forge_helper_alone_changes_nothing(runtime: Runtime, client: Client) -> None:
    """Control: a token re-signed by our key with nothing changed verifies, so each refusal below counts."""
    assert runtime.validator.verify(forge(runtime, client)).client_id == client.id


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(runtime: Runtime, client: Client, alg: str) -> None:
    real = genuine(runtime, client)
    payload = real.split(".")[1]
    _, kid = server_key(runtime)
    unsigned = f"{b64_json({'alg': alg, 'typ': 'at+jwt', 'kid': kid})}.{payload}."
    assert_refused(runtime, unsigned, "none")


def _public_key_secrets(runtime: Runtime) -> list[bytes]:
    """Every encoding of our public key an attacker might feed HMAC: PEM, DER, JWK JSON, raw point."""
    ring_key = runtime.keyring().signing_key(runtime.clock.now())
    assert ring_key is not None
    public = ring_key.public_key.get_op_key("verify")
    return [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
        json.dumps(ring_key.public_jwk).encode(),
    ]


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_our_public_key_is_refused(runtime: Runtime, client: Client, alg: str) -> None:
    real = unverified_claims(genuine(runtime, client))
    _, kid = server_key(runtime)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    for secret in _public_key_secrets(runtime):
        signing_input = f"{b64_json({'alg': alg, 'typ': 'at+jwt', 'kid': kid})}.{b64_json(real)}"
        mac = hmac.new(secret, signing_input.encode(), digest).digest()
        assert_refused(runtime, f"{signing_input}.{b64(mac)}", alg)


def test_an_alg_not_configured_for_the_kid_is_refused(runtime: Runtime, client: Client) -> None:
    """Our kid names an ES256 key; an EdDSA signature under that kid is refused before any crypto."""
    token = forge(runtime, client, header={"alg": "EdDSA"}, key=private_key("Ed25519"))
    assert_refused(runtime, token, "not allowed for this key")


def test_an_unknown_kid_is_refused(runtime: Runtime, client: Client) -> None:
    assert_refused(runtime, forge(runtime, client, header={"kid": "no-such-key"}), "unknown")


def test_a_missing_kid_is_refused(runtime: Runtime, client: Client) -> None:
    assert_refused(runtime, forge(runtime, client, header={"kid": DROP}), "no kid")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "dpop+jwt", "client-authentication+jwt", "", DROP])
def test_a_wrong_or_missing_typ_is_refused(runtime: Runtime, client: Client, typ: object) -> None:
    assert_refused(runtime, forge(runtime, client, header={"typ": typ}), "typ")


def test_application_at_jwt_is_the_same_type(runtime: Runtime, client: Client) -> None:
    token = forge(runtime, client, header={"typ": "application/at+jwt"})
    assert runtime.validator.verify(token).client_id == client.id


@pytest.mark.parametrize("iss", ["http://evil.test", "http://tessera.test/", "HTTP://TESSERA.TEST", "", DROP])
def test_a_wrong_issuer_is_refused(runtime: Runtime, client: Client, iss: object) -> None:
    assert_refused(runtime, forge(runtime, client, iss=iss), "issuer")


def test_unknown_crit_is_refused_even_when_signed_by_us(runtime: Runtime, client: Client) -> None:
    token = forge(
        runtime, client, header={"crit": ["urn:example:must-understand"], "urn:example:must-understand": 1}
    )
    assert_refused(runtime, token, "critical")


def test_missing_exp_is_refused(runtime: Runtime, client: Client) -> None:
    assert_refused(runtime, forge(runtime, client, exp=DROP), "exp")


def test_missing_iat_is_refused(runtime: Runtime, client: Client) -> None:
    assert_refused(runtime, forge(runtime, client, iat=DROP), "iat")


def test_far_future_nbf_is_refused(runtime: Runtime, client: Client) -> None:
    now = int(runtime.clock.now())
    assert_refused(runtime, forge(runtime, client, nbf=now + 86400), "nbf")


def test_far_future_iat_is_refused(runtime: Runtime, client: Client) -> None:
    now = int(runtime.clock.now())
    assert_refused(runtime, forge(runtime, client, iat=now + 86400, exp=now + 86400 + 300), "future")


def test_a_lifetime_over_the_cap_is_refused(runtime: Runtime, client: Client) -> None:
    now = int(runtime.clock.now())
    cap = runtime.settings.max_access_token_ttl
    assert runtime.validator.verify(forge(runtime, client, iat=now, exp=now + cap))
    assert_refused(runtime, forge(runtime, client, iat=now, exp=now + cap + 31), "lifetime")
    assert_refused(runtime, forge(runtime, client, iat=now, exp=now + 10 * 365 * 86400), "lifetime")


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_times_are_refused(runtime: Runtime, client: Client, value: str) -> None:
    """``exp: NaN`` compares false with everything: it must never read as 'not expired'."""
    real = genuine(runtime, client)
    header = real.split(".")[0]
    claims = json.dumps(unverified_claims(real)).replace('"exp": ', f'"exp": {value}, "was": ')
    signing_input = f"{header}.{b64(claims.encode())}"
    our_key, _ = server_key(runtime)
    signature = sign_jwt({"alg": "ES256"}, {}, our_key)  # any signature: parsing must fail first
    assert_refused(runtime, f"{signing_input}.{signature.split('.')[2]}")


def test_a_tampered_payload_is_refused(runtime: Runtime, client: Client) -> None:
    real = genuine(runtime, client, scope="tickets:read")
    header, _, signature = real.split(".")
    widened = merged(unverified_claims(real), {"scope": "tickets:read tickets:write admin"})
    assert_refused(runtime, f"{header}.{b64_json(widened)}.{signature}", "signature")


def test_a_token_signed_by_another_key_under_our_kid_is_refused(runtime: Runtime, client: Client) -> None:
    assert_refused(runtime, forge(runtime, client, key=private_key()), "signature")


def test_an_embedded_jwk_is_never_used_to_find_the_key(runtime: Runtime, client: Client) -> None:
    attacker = private_key()
    jwk = dict(attacker.as_dict(private=False))
    # Under the attacker's own kid: unknown to us, whatever the header carries.
    own_kid = forge(runtime, client, header={"kid": attacker.thumbprint(), "jwk": jwk}, key=attacker)
    assert_refused(runtime, own_kid, "unknown")
    # Under our kid: the signature does not verify with our key.
    our_kid = forge(runtime, client, header={"jwk": jwk}, key=attacker)
    assert_refused(runtime, our_kid, "signature")
    # Without any kid.
    assert_refused(runtime, forge(runtime, client, header={"kid": DROP, "jwk": jwk}, key=attacker))


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_jku_and_x5u_are_never_fetched(runtime: Runtime, client: Client, member: str) -> None:
    attacker = private_key()
    attacker_jwks = {"keys": [{**attacker.as_dict(private=False), "kid": "evil", "alg": "ES256"}]}
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if request.url.host == "evil.test":
            return httpx.Response(200, json=attacker_jwks)
        return httpx.Response(200, json=runtime.keyring().jwks(runtime.clock.now()))

    http = httpx.Client(transport=httpx.MockTransport(handler))
    jwks = JwksCache(f"{runtime.issuer}/.well-known/jwks.json", http=http, min_interval=0)
    verifier = TokenVerifier(
        issuer=runtime.issuer, jwks=jwks, audience=runtime.issuer, clock=runtime.clock.now
    )
    token = forge(
        runtime, client, header={"kid": "evil", member: "https://evil.test/jwks.json"}, key=attacker
    )
    with pytest.raises(VerificationError, match="unknown"):
        verifier.verify(f"Bearer {token}", method="GET", url="https://api.example/x")
    assert fetched == [f"{runtime.issuer}/.well-known/jwks.json"]
    with pytest.raises(JwsError, match="unknown"):
        runtime.validator.verify(token)
    http.close()


def test_oversized_tokens_are_refused(runtime: Runtime, client: Client) -> None:
    limit = runtime.settings.max_token_bytes
    token = forge(runtime, client, pad="x" * limit)
    assert len(token) > limit
    assert_refused(runtime, token, "limit")


def test_the_payload_must_be_a_json_object_with_string_claims(runtime: Runtime, client: Client) -> None:
    for claims in ({"sub": 7}, {"client_id": ""}, {"jti": ["a"]}, {"scope": ["a"]}, {"aud": []}):
        assert_refused(runtime, forge(runtime, client, **claims))
    for claims in ({"cnf": "x"}, {"cnf": {"jkt": 1}}, {"authorization_details": {"type": "agent_task"}}):
        assert_refused(runtime, forge(runtime, client, **claims))
