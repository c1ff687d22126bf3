"""The SDK's JWKS cache: refreshed on an unknown kid, rate limited, and strict about what it keeps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tessera.sdk.proofs import generate_private_jwk, public_jwk
from tessera.sdk.verifier import JwksCache, UnknownKey

URI = "https://as.example/.well-known/jwks.json"


class FakeServer:
    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.requests: list[str] = []
        self.response: httpx.Response | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        return self.response or httpx.Response(200, json={"keys": self.keys})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def es256(kid: str) -> dict[str, Any]:
    return {**public_jwk(generate_private_jwk()), "kid": kid, "use": "sig"}


def test_an_unknown_kid_triggers_one_refresh() -> None:
    server = FakeServer(es256("k1"))
    clock = Clock()
    cache = JwksCache(URI, http=server.client(), min_interval=10, clock=clock)
    assert cache.get("k1") is not None
    assert server.requests == [URI]
    assert cache.get("k1") is not None
    assert server.requests == [URI]  # cached
    server.keys.append(es256("k2"))
    clock.now = 10
    assert cache.get("k2") is not None  # a rotation is picked up
    assert len(server.requests) == 2


def test_refreshes_are_rate_limited() -> None:
    server = FakeServer(es256("k1"))
    clock = Clock()
    cache = JwksCache(URI, http=server.client(), min_interval=10, clock=clock)
    cache.get("k1")
    for kid in ("nope-1", "nope-2", "nope-3"):
        assert cache.get(kid) is None
    assert len(server.requests) == 1  # forged kids cannot make us hammer the server
    clock.now = 10
    assert cache.get("nope-4") is None
    assert len(server.requests) == 2


def test_without_fetching_an_unknown_kid_is_reported() -> None:
    cache = JwksCache(URI, http=FakeServer(es256("k1")).client())
    with pytest.raises(UnknownKey):
        cache.get("k1", allow_fetch=False)


def test_a_static_jwks_never_fetches() -> None:
    cache = JwksCache(jwks={"keys": [es256("k1")]})
    assert cache.has("k1")
    assert cache.get("other") is None


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"keys": []}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, content=b'{"keys": [' + b" " * 70_000 + b"]}"),
        httpx.Response(302, headers={"location": "https://evil.example/jwks"}),
    ],
)
def test_a_bad_response_keeps_the_known_keys(response: httpx.Response) -> None:
    server = FakeServer(es256("k1"))
    clock = Clock()
    cache = JwksCache(URI, http=server.client(), min_interval=0, clock=clock)
    assert cache.get("k1") is not None
    server.response = response
    assert cache.get("k2") is None
    assert cache.get("k1") is not None
    assert all(url == URI for url in server.requests)


def test_only_usable_public_signing_keys_are_kept() -> None:
    private = {**generate_private_jwk(), "kid": "private"}
    ed = {k: v for k, v in public_jwk(generate_private_jwk("Ed25519")).items() if k != "alg"} | {"kid": "ed"}
    jwks = {
        "keys": [
            es256("good"),
            {**es256("enc"), "use": "enc"},
            private,
            {"kty": "RSA", "kid": "rsa", "n": "sXch", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**es256("x"), "kid": None},
            {**es256("mismatch"), "alg": "EdDSA"},
            {**es256("broken"), "x": "AAAA"},
            "not a key",
            ed,
            {**ed, "kid": "ed-named", "alg": "Ed25519"},
        ]
    }
    cache = JwksCache(jwks=jwks)
    assert sorted(
        kid
        for kid in ("good", "enc", "private", "rsa", "hmac", "mismatch", "broken", "ed", "ed-named")
        if cache.has(kid)
    ) == [
        "ed",
        "ed-named",
        "good",
    ]
    good = cache.get("good")
    assert good is not None
    assert good[1] == ("ES256",)
    assert cache.get("ed")[1] == ("EdDSA", "Ed25519")  # type: ignore[index]
    assert cache.get("ed-named")[1] == ("Ed25519",)  # type: ignore[index]


@pytest.mark.parametrize("jwks", [None, [], {"keys": "x"}, {"keys": [1, 2]}, {}])
def test_malformed_jwks_documents_hold_no_keys(jwks: Any) -> None:
    assert not JwksCache(jwks=jwks if jwks is not None else {}).has("k1")


def test_a_key_the_server_dropped_stops_verifying_within_max_age() -> None:
    server = FakeServer(es256("k1"))
    clock = Clock()
    cache = JwksCache(URI, http=server.client(), min_interval=10, max_age=300, clock=clock)
    assert cache.get("k1") is not None
    server.keys = [es256("k2")]  # k1 retired on the server
    clock.now = 299
    assert cache.get("k1") is not None
    assert cache.get("k1", allow_fetch=True) is not None
    clock.now = 300
    assert cache.get("k1") is None
    assert cache.get("k2") is not None
    assert len(server.requests) == 2


def test_a_stale_copy_is_not_used_without_fetching() -> None:
    server = FakeServer(es256("k1"))
    clock = Clock()
    cache = JwksCache(URI, http=server.client(), max_age=300, clock=clock)
    cache.get("k1")
    clock.now = 300
    with pytest.raises(UnknownKey):
        cache.get("k1", allow_fetch=False)
