"""Fetching a trusted issuer's JWK set safely, and caching its keys.

The JWKS URL is the one outbound request an unauthenticated caller can cause
(by presenting a token of a trusted issuer), so it is fenced in (SSRF):

- **Scheme**: https; http only for an issuer registered with
  ``allow_private_network``, and then only to non-public addresses.
- **Addresses**: the host name is resolved once and *every* address is checked;
  loopback, private, link-local, shared, reserved and other non-global
  addresses are refused unless the issuer allows private networks; multicast
  and unspecified addresses always are. The connection then goes to the
  checked address itself (the URL's host is replaced by the IP; ``Host`` and the
  TLS server name, used for SNI and certificate checks, keep the real name), so a
  second DNS answer cannot point it elsewhere (DNS rebinding).
- **Redirects**: none are followed, to any host. A JWKS endpoint answers directly.
- **Proxies**: environment proxy settings are ignored (a proxy would connect to
  an address nobody checked).
- **Limits**: connect/read timeouts, an overall deadline, and a response size
  limit enforced while streaming (the body is dropped once it passes the limit);
  only uncompressed bodies, so the limit is the size that is parsed.

The cache keeps each issuer's keys for ``cache_seconds``. A token naming an
unknown ``kid`` triggers a refresh (key rotation), at most once every
``refresh_interval`` seconds per issuer, failures included, so forged kids
cannot turn Tessera into a request amplifier. An issuer whose keys cannot be
fetched (and whose cache has expired) fails closed.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tessera.clock import Clock
from tessera.federation.issuers import TrustedIssuer
from tessera.federation.keys import JwksError, VerificationKey, parse_jwks

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class JwksUnavailable(Exception):
    """The issuer's keys could not be fetched; the message is the reason, safe to return."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise JwksUnavailable(f"cannot resolve host '{host[:80]}'") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_address(address: IPAddress, *, allow_private_network: bool) -> None:
    """Refuse addresses a JWKS fetch must not reach (see the module docstring)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_multicast or address.is_unspecified:
        raise JwksUnavailable(f"address {address} is not allowed")
    if not address.is_global and not allow_private_network:
        raise JwksUnavailable(
            f"address {address} is private, loopback or link-local "
            "(the issuer does not allow private networks)"
        )


class JwksFetcher:
    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        resolver: Resolver = system_resolver,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._resolver = resolver
        self._verify = verify

    def fetch(self, url: str, *, allow_private_network: bool) -> Any:
        """GET ``url`` under the rules above and return the parsed JSON; raise ``JwksUnavailable``."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("https", "http") or not host:
            raise JwksUnavailable(f"jwks url '{url[:80]}' is not an http(s) url")
        if parts.scheme == "http" and not allow_private_network:
            raise JwksUnavailable("jwks url must use https")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise JwksUnavailable(f"jwks url '{url[:80]}' has an invalid port") from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self._resolver(host, port)]
        if not addresses:
            raise JwksUnavailable(f"host '{host[:80]}' has no address")
        for address in addresses:
            check_address(address, allow_private_network=allow_private_network)
        if parts.scheme == "http" and any(a.is_global for a in addresses):
            raise JwksUnavailable("plain http is allowed only to private network addresses")
        pinned = addresses[0]
        literal = f"[{pinned}]" if pinned.version == 6 else str(pinned)
        target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        name = f"[{host}]" if ":" in host else host
        host_header = name if parts.port is None else f"{name}:{parts.port}"
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return self._get(target, host_header, extensions)

    def _get(self, target: str, host_header: str, extensions: dict[str, Any]) -> Any:
        deadline = time.monotonic() + 2 * self._timeout
        timeout = httpx.Timeout(self._timeout)
        # identity: a compressed body could expand far past the limit within one chunk.
        headers = {
            "Host": host_header,
            "Accept": "application/jwk-set+json, application/json",
            "Accept-Encoding": "identity",
        }
        try:
            with (
                httpx.Client(
                    timeout=timeout, follow_redirects=False, trust_env=False, verify=self._verify
                ) as client,
                client.stream("GET", target, headers=headers, extensions=extensions) as response,
            ):
                if response.is_redirect:
                    raise JwksUnavailable(f"http {response.status_code} redirect; redirects are not followed")
                if response.status_code != 200:
                    raise JwksUnavailable(f"http {response.status_code}")
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise JwksUnavailable("compressed responses are not accepted")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise JwksUnavailable(f"response is larger than {self._max_bytes} bytes")
                body = bytearray()
                for chunk in response.iter_raw(16384):
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise JwksUnavailable(f"response is larger than {self._max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise JwksUnavailable("timed out reading the response")
        except httpx.TimeoutException as exc:
            raise JwksUnavailable("timed out") from exc
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"request failed ({type(exc).__name__})") from exc
        try:
            return json.loads(bytes(body))
        except (ValueError, RecursionError) as exc:
            raise JwksUnavailable("response is not json") from exc


@dataclass(slots=True)
class _Entry:
    keys: tuple[VerificationKey, ...] | None = None
    fetched_at: float = 0.0
    attempted_at: float | None = None
    error: str | None = None


class JwksCache:
    """Each trusted issuer's keys: static ones as registered, fetched ones cached and refreshed."""

    def __init__(
        self, fetcher: JwksFetcher, clock: Clock, *, cache_seconds: float, refresh_interval: float
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._refresh_interval = refresh_interval
        self._entries: dict[str, _Entry] = {}
        self._static: dict[tuple[str, float], tuple[VerificationKey, ...]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        #: How many fetches were attempted (for tests and metrics).
        self.fetches = 0

    def forget(self, issuer_id: str) -> None:
        """Drop what is cached for an issuer (it changed or was removed)."""
        with self._guard:
            self._entries.pop(issuer_id, None)
            self._static = {k: v for k, v in self._static.items() if k[0] != issuer_id}

    def keys(self, issuer: TrustedIssuer, kid: str | None) -> tuple[VerificationKey, ...]:
        """The issuer's keys, refreshed if ``kid`` is unknown (rate limited); ``JwksUnavailable`` if none."""
        if issuer.jwks is not None:
            return self._static_keys(issuer)
        with self._guard:
            lock = self._locks.setdefault(issuer.id, threading.Lock())
        with lock:
            now = self._clock.now()
            entry = self._entries.get(issuer.id) or _Entry()
            fresh = entry.keys is not None and now - entry.fetched_at < self._cache_seconds
            if fresh and (kid is None or any(k.kid == kid for k in entry.keys or ())):
                return entry.keys or ()
            recently = entry.attempted_at is not None and now - entry.attempted_at < self._refresh_interval
            if recently:
                if fresh:
                    return entry.keys or ()  # the unknown kid stays unknown until the next refresh is due
                raise JwksUnavailable(entry.error or "no keys are cached")
            entry = self._refresh(issuer, entry, now)
            self._entries[issuer.id] = entry
            if entry.keys is not None and now - entry.fetched_at < self._cache_seconds:
                return entry.keys
            raise JwksUnavailable(entry.error or "no keys are cached")

    def _refresh(self, issuer: TrustedIssuer, entry: _Entry, now: float) -> _Entry:
        assert issuer.jwks_url is not None  # noqa: S101 - static issuers never get here
        self.fetches += 1
        try:
            document = self._fetcher.fetch(
                issuer.jwks_url, allow_private_network=issuer.allow_private_network
            )
            keys = parse_jwks(document, issuer.algorithms, strict=False)
        except (JwksUnavailable, JwksError) as exc:
            return _Entry(keys=entry.keys, fetched_at=entry.fetched_at, attempted_at=now, error=str(exc))
        return _Entry(keys=keys, fetched_at=now, attempted_at=now)

    def _static_keys(self, issuer: TrustedIssuer) -> tuple[VerificationKey, ...]:
        key = (issuer.id, issuer.updated_at)
        keys = self._static.get(key)
        if keys is None:
            try:
                keys = parse_jwks(issuer.jwks, issuer.algorithms, strict=True)
            except JwksError as exc:
                raise JwksUnavailable(str(exc)) from exc
            with self._guard:
                self._static[key] = keys
        return keys
