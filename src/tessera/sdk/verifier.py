"""Local verification of Tessera access tokens for resource servers.

``TokenVerifier.verify`` checks the token exactly as the server does (RFC 9068 §4,
the invariants of DESIGN.md) against a cached JWKS, and, for a DPoP-bound token,
its proof (RFC 9449 §7.1): scheme ``DPoP``, a proof signed by the key whose
thumbprint is ``cnf.jkt``, ``ath`` matching the token, ``htm``/``htu`` matching
the request and a ``jti`` seen only once.

Local verification sees revocations, agents stopped and kill switches only
when given a :class:`~tessera.sdk.revocations.RevocationFollower`
(``revocations=``), which follows the server's revocation feed; without one,
a resource server that needs to stop a revoked token at once introspects it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tessera.errors import ValidationFailed
from tessera.identity.keys import PublicKey, allowed_algorithms, import_public_key
from tessera.sdk.revocations import RevocationFollower
from tessera.tokens.access_tokens import AccessToken, verify_access_token
from tessera.tokens.dpop import verify_dpop_proof
from tessera.tokens.jose import JwsError

MAX_JWKS_BYTES = 64 * 1024


class VerificationError(Exception):
    """Why a request's credentials were refused; ``www_authenticate`` is ready to send."""

    def __init__(
        self,
        error: str,
        description: str,
        scheme: str = "Bearer",
        status: int = 401,
        *,
        missing: bool = False,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        safe = description.replace('"', "'")
        if missing:
            # RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
            self.www_authenticate = f'{scheme} realm="tessera"'
        else:
            self.www_authenticate = f'{scheme} error="{error}", error_description="{safe}"'
        if scheme == "DPoP":
            self.www_authenticate += ', algs="ES256 EdDSA Ed25519"'


class UnknownKey(Exception):
    pass


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    token: AccessToken
    dpop_jkt: str | None

    @property
    def agent_id(self) -> str:
        return self.token.client_id

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.token.scopes

    @property
    def task_id(self) -> str | None:
        return self.token.task_id


class JwksCache:
    """Public keys by kid, refreshed when an unknown kid appears (at most once per ``min_interval``)
    and when the copy is older than ``max_age``, so a key the server retired stops verifying here
    within ``max_age`` seconds even if no new kid ever shows up."""

    def __init__(
        self,
        jwks_uri: str | None = None,
        *,
        jwks: dict[str, Any] | None = None,
        http: httpx.Client | None = None,
        min_interval: float = 10.0,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = jwks_uri
        self._http = http
        self._min_interval = min_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, tuple[PublicKey, tuple[str, ...]]] = {}
        self._last_fetch = float("-inf")
        self._lock = threading.Lock()
        if jwks is not None:
            self._keys = self._parse(jwks)

    @staticmethod
    def _parse(jwks: dict[str, Any]) -> dict[str, tuple[PublicKey, tuple[str, ...]]]:
        keys: dict[str, tuple[PublicKey, tuple[str, ...]]] = {}
        for jwk in jwks.get("keys", []) if isinstance(jwks, dict) else []:
            if (
                not isinstance(jwk, dict)
                or not isinstance(jwk.get("kid"), str)
                or jwk.get("use", "sig") != "sig"
            ):
                continue
            algs = allowed_algorithms(jwk)
            if jwk.get("alg") is not None:
                algs = tuple(a for a in algs if a == jwk["alg"])
            if not algs:
                continue
            try:
                keys[jwk["kid"]] = (import_public_key(jwk), algs)
            except ValidationFailed:
                continue
        return keys

    def has(self, kid: str) -> bool:
        return kid in self._keys

    def get(self, kid: str, *, allow_fetch: bool = True) -> tuple[PublicKey, tuple[str, ...]] | None:
        found = self._keys.get(kid)
        if self._uri is None:
            return found
        stale = self._clock() - self._last_fetch >= self._max_age
        if found is not None and not stale:
            return found
        if not allow_fetch:
            raise UnknownKey(kid)
        with self._lock:
            age = self._clock() - self._last_fetch
            if age >= self._max_age or (self._keys.get(kid) is None and age >= self._min_interval):
                self.refresh()
        return self._keys.get(kid)

    def refresh(self) -> None:
        if self._uri is None:
            return
        self._last_fetch = self._clock()
        client = self._http or httpx.Client(timeout=5.0, follow_redirects=False)
        try:
            response = client.get(self._uri)
            if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
                return
            self._keys = self._parse(response.json())
        except (httpx.HTTPError, ValueError):
            return
        finally:
            if self._http is None:
                client.close()


class ReplayCache:
    """Seen DPoP ``jti``s until they could no longer verify; bounded in size."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        with self._lock:
            while self._seen:
                oldest_key, oldest_exp = next(iter(self._seen.items()))
                if oldest_exp >= now and len(self._seen) < self._max:
                    break
                self._seen.pop(oldest_key)
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            return True


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        jwks: JwksCache,
        audience: str,
        leeway: float = 30.0,
        max_lifetime: float = 3600.0,
        max_token_bytes: int = 8192,
        dpop_max_age: float = 60.0,
        clock: Callable[[], float] = time.time,
        revocations: RevocationFollower | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.revocations = revocations
        self.jwks = jwks
        self.audience = audience
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._max_bytes = max_token_bytes
        self._dpop_max_age = dpop_max_age
        self._clock = clock
        self._replays = ReplayCache()

    @classmethod
    def for_server(
        cls,
        server_url: str,
        *,
        audience: str | None = None,
        jwks_min_interval: float = 5.0,
        jwks_max_age: float = 300.0,
        **kwargs: Any,
    ) -> TokenVerifier:
        """A verifier for a Tessera server whose issuer is ``server_url``, using its JWKS.

        ``audience`` is the resource indicator this resource server answers to; tokens
        whose ``aud`` does not name it are refused. It defaults to the issuer itself,
        the audience of tokens requested without ``resource``.
        """
        base = server_url.rstrip("/")
        return cls(
            issuer=base,
            jwks=JwksCache(
                f"{base}/.well-known/jwks.json", min_interval=jwks_min_interval, max_age=jwks_max_age
            ),
            audience=audience or base,
            **kwargs,
        )

    def verify_token(self, token: str, *, allow_fetch: bool = True) -> AccessToken:
        """Verify a bare access token (no proof-of-possession check)."""
        try:
            verified = verify_access_token(
                token,
                key_lookup=lambda kid: self.jwks.get(kid, allow_fetch=allow_fetch),
                issuer=self.issuer,
                now=self._clock(),
                leeway=self._leeway,
                max_bytes=self._max_bytes,
                max_lifetime=self._max_lifetime,
                audience=self.audience,
            )
        except JwsError as exc:
            raise VerificationError("invalid_token", str(exc)) from exc
        stopped = self.revocations.stopped(verified) if self.revocations is not None else None
        if stopped is not None:
            raise VerificationError("invalid_token", stopped)
        return verified

    def verify(
        self,
        authorization: str | None,
        *,
        method: str,
        url: str,
        dpop: str | list[str] | None = None,
        allow_fetch: bool = True,
    ) -> VerifiedRequest:
        """Verify the ``Authorization`` header (and ``DPoP`` header) of a request to ``url``."""
        if not authorization or " " not in authorization:
            raise VerificationError("invalid_request", "missing access token", missing=True)
        scheme, _, token = authorization.partition(" ")
        scheme = scheme.lower()
        token = token.strip()
        if scheme not in ("bearer", "dpop"):
            raise VerificationError("invalid_request", f"unsupported authorization scheme '{scheme[:20]}'")
        verified = self.verify_token(token, allow_fetch=allow_fetch)
        if verified.cnf_jkt is None:
            if scheme == "dpop":
                raise VerificationError("invalid_token", "token is not dpop-bound", scheme="DPoP")
            return VerifiedRequest(verified, None)
        if scheme != "dpop":
            raise VerificationError(
                "invalid_token", "dpop-bound token presented as a bearer token", scheme="DPoP"
            )
        proofs = [dpop] if isinstance(dpop, str) else list(dpop or [])
        if len(proofs) != 1:
            raise VerificationError("invalid_dpop_proof", "exactly one dpop proof is required", scheme="DPoP")
        now = self._clock()
        try:
            proof = verify_dpop_proof(
                proofs[0],
                method=method,
                url=url,
                now=now,
                max_age=self._dpop_max_age,
                leeway=self._leeway,
                access_token=token,
            )
        except JwsError as exc:
            raise VerificationError("invalid_dpop_proof", str(exc), scheme="DPoP") from exc
        if proof.jkt != verified.cnf_jkt:
            raise VerificationError(
                "invalid_dpop_proof", "dpop proof key does not match the token", scheme="DPoP"
            )
        expires = proof.iat + self._dpop_max_age + 2 * self._leeway
        if not self._replays.first_use(f"{proof.jkt}|{proof.jti}", expires, now):
            raise VerificationError("invalid_dpop_proof", "dpop proof has already been used", scheme="DPoP")
        return VerifiedRequest(verified, proof.jkt)
