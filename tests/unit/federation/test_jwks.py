"""Safe JWKS fetching (SSRF rules, limits) and the key cache (rotation, rate limit, fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.clock import ManualClock
from tessera.federation.issuers import TrustedIssuer, parse_issuer
from tessera.federation.jwks import JwksCache, JwksFetcher, JwksUnavailable
from tests.federation_issuer import LocalIssuer, self_signed


def fetcher(**overrides: object) -> JwksFetcher:
    options: dict[str, object] = {"timeout": 2.0, "max_bytes": 16 * 1024}
    options.update(overrides)
    return JwksFetcher(**options)  # type: ignore[arg-type]


def trusted(url: str, *, allow_private: bool = True, id_: str = "iss_1") -> TrustedIssuer:
    return parse_issuer(
        {
            "issuer": "https://cluster.example",
            "jwks_url": url,
            "allow_private_network": allow_private,
            "subject": {"type": "agent", "agent_id": "agt_1"},
        },
        id_=id_,
        created_at=0.0,
        updated_at=0.0,
        default_audiences=("http://tessera.test",),
        ttl_cap=3600,
    )


def test_fetches_a_jwks_from_an_allowed_loopback_issuer(local_issuer: LocalIssuer) -> None:
    document = fetcher().fetch(local_issuer.jwks_url, allow_private_network=True)
    assert [k["kid"] for k in document["keys"]] == [local_issuer.kid]


def test_loopback_and_private_addresses_are_refused_unless_allowed(local_issuer: LocalIssuer) -> None:
    with pytest.raises(JwksUnavailable, match="jwks url must use https"):
        fetcher().fetch(local_issuer.jwks_url, allow_private_network=False)
    https = local_issuer.jwks_url.replace("http://", "https://")
    with pytest.raises(JwksUnavailable, match=r"address 127\.0\.0\.1 is private, loopback or link-local"):
        fetcher().fetch(https, allow_private_network=False)
    for address in (
        "10.0.0.7",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fd00::1",
        "::ffff:10.0.0.1",
    ):
        resolver = lambda _host, _port, a=address: [a]  # noqa: E731
        with pytest.raises(JwksUnavailable, match="is private, loopback or link-local"):
            fetcher(resolver=resolver).fetch("https://keys.example/jwks", allow_private_network=False)
    assert local_issuer.requests == 0


def test_every_resolved_address_is_checked() -> None:
    resolver = lambda _host, _port: ["93.184.216.34", "127.0.0.1"]  # noqa: E731
    with pytest.raises(JwksUnavailable, match=r"127\.0\.0\.1"):
        fetcher(resolver=resolver).fetch("https://keys.example/jwks", allow_private_network=False)


def test_multicast_and_unspecified_are_refused_even_when_private_is_allowed() -> None:
    for address in ("0.0.0.0", "224.0.0.1", "::"):
        resolver = lambda _host, _port, a=address: [a]  # noqa: E731
        with pytest.raises(JwksUnavailable, match="is not allowed"):
            fetcher(resolver=resolver).fetch("http://keys.internal/jwks", allow_private_network=True)


def test_plain_http_never_reaches_a_public_address() -> None:
    resolver = lambda _host, _port: ["93.184.216.34"]  # noqa: E731
    with pytest.raises(JwksUnavailable, match="plain http is allowed only to private network addresses"):
        fetcher(resolver=resolver).fetch("http://keys.example/jwks", allow_private_network=True)


def test_the_connection_goes_to_the_checked_address_once_resolved(local_issuer: LocalIssuer) -> None:
    """DNS rebinding: the name is resolved once; the request goes to that address, named by Host."""
    answers = [["127.0.0.1"], ["93.184.216.34"]]
    calls: list[str] = []

    def rebinding(host: str, _port: int) -> list[str]:
        calls.append(host)
        return answers[len(calls) - 1]

    url = f"http://issuer.internal:{local_issuer.port}/jwks"
    document = fetcher(resolver=rebinding).fetch(url, allow_private_network=True)
    assert document["keys"][0]["kid"] == local_issuer.kid
    assert calls == ["issuer.internal"]
    assert local_issuer.hosts == [f"issuer.internal:{local_issuer.port}"]


def test_redirects_are_not_followed(local_issuer: LocalIssuer) -> None:
    local_issuer.mode = "redirect"
    with pytest.raises(JwksUnavailable, match="http 302 redirect; redirects are not followed"):
        fetcher().fetch(local_issuer.jwks_url, allow_private_network=True)
    assert local_issuer.requests == 1


def test_an_oversized_jwks_is_refused_while_streaming(local_issuer: LocalIssuer) -> None:
    local_issuer.mode = "huge"
    with pytest.raises(JwksUnavailable, match="response is larger than 16384 bytes"):
        fetcher().fetch(local_issuer.jwks_url, allow_private_network=True)


def test_a_stalled_server_times_out(local_issuer: LocalIssuer) -> None:
    local_issuer.mode = "slow"
    with pytest.raises(JwksUnavailable, match="timed out"):
        fetcher(timeout=0.2).fetch(local_issuer.jwks_url, allow_private_network=True)


@pytest.mark.parametrize(("mode", "reason"), [("error", "http 500"), ("not-json", "response is not json")])
def test_failures_say_why(local_issuer: LocalIssuer, mode: str, reason: str) -> None:
    local_issuer.mode = mode
    with pytest.raises(JwksUnavailable, match=reason):
        fetcher().fetch(local_issuer.jwks_url, allow_private_network=True)


def test_unknown_kid_refreshes_at_most_once_per_interval(local_issuer: LocalIssuer) -> None:
    clock = ManualClock()
    cache = JwksCache(fetcher(), clock, cache_seconds=300, refresh_interval=30)
    issuer = trusted(local_issuer.jwks_url)
    old_kid = local_issuer.kid
    assert [k.kid for k in cache.keys(issuer, old_kid)] == [old_kid]
    assert cache.keys(issuer, old_kid)[0].kid == old_kid
    assert cache.fetches == 1

    new_kid = local_issuer.rotate()
    # Within the refresh interval an unknown kid does not cause a fetch.
    clock.advance(10)
    assert [k.kid for k in cache.keys(issuer, new_kid)] == [old_kid]
    assert [k.kid for k in cache.keys(issuer, "forged-kid")] == [old_kid]
    assert cache.fetches == 1
    # Once it has passed, the unknown kid triggers one refresh: the old kid is gone, the new one there.
    clock.advance(25)
    assert [k.kid for k in cache.keys(issuer, new_kid)] == [new_kid]
    assert cache.fetches == 2
    for _ in range(5):
        cache.keys(issuer, "forged-kid")
    assert cache.fetches == 2
    assert local_issuer.requests == 2


def test_an_issuer_whose_jwks_cannot_be_fetched_fails_closed(local_issuer: LocalIssuer) -> None:
    clock = ManualClock()
    cache = JwksCache(fetcher(), clock, cache_seconds=60, refresh_interval=30)
    issuer = trusted(local_issuer.jwks_url)
    cache.keys(issuer, local_issuer.kid)
    local_issuer.mode = "error"
    # Cached keys serve until the cache expires…
    clock.advance(45)
    assert cache.keys(issuer, local_issuer.kid)
    # …then the refresh fails and nothing is accepted, and retries are rate limited.
    clock.advance(20)
    with pytest.raises(JwksUnavailable, match="http 500"):
        cache.keys(issuer, local_issuer.kid)
    with pytest.raises(JwksUnavailable, match="http 500"):
        cache.keys(issuer, local_issuer.kid)
    assert local_issuer.requests == 2
    local_issuer.mode = "ok"
    clock.advance(31)
    assert cache.keys(issuer, local_issuer.kid)
    assert local_issuer.requests == 3


def test_forget_drops_cached_keys(local_issuer: LocalIssuer) -> None:
    cache = JwksCache(fetcher(), ManualClock(), cache_seconds=300, refresh_interval=30)
    issuer = trusted(local_issuer.jwks_url)
    cache.keys(issuer, None)
    cache.forget(issuer.id)
    cache.keys(issuer, None)
    assert local_issuer.requests == 2


def test_https_to_a_pinned_address_checks_the_certificate_for_the_real_name(tmp_path: Path) -> None:
    """The URL's host is replaced by the checked IP; TLS still verifies the certificate for the name."""
    server_tls, client_tls = self_signed(tmp_path, "issuer.test")
    issuer = LocalIssuer().start(tls=server_tls)
    try:
        to_loopback = lambda _host, _port: ["127.0.0.1"]  # noqa: E731
        url = f"https://issuer.test:{issuer.port}/jwks"
        document = fetcher(resolver=to_loopback, verify=client_tls).fetch(url, allow_private_network=True)
        assert document["keys"][0]["kid"] == issuer.kid
        assert issuer.hosts == [f"issuer.test:{issuer.port}"]
        # Another name resolving to the same address does not match the certificate.
        other = f"https://other.test:{issuer.port}/jwks"
        with pytest.raises(JwksUnavailable, match=r"request failed \(ConnectError\)"):
            fetcher(resolver=to_loopback, verify=client_tls).fetch(other, allow_private_network=True)
    finally:
        issuer.stop()


def test_compressed_responses_are_refused(local_issuer: LocalIssuer) -> None:
    local_issuer.mode = "gzip"
    with pytest.raises(JwksUnavailable, match="compressed responses are not accepted"):
        fetcher().fetch(local_issuer.jwks_url, allow_private_network=True)
