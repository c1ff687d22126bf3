"""Authenticating API callers: a Tessera access token carrying a scope, or the admin credential.

``token_caller("authzen")`` is a FastAPI dependency any router can reuse. It accepts:

- the admin credential as a Bearer token;
- a Tessera access token (RFC 9068) whose ``aud`` names this server and whose
  ``scope`` holds the required scope, as a Bearer token (RFC 6750 §2.1) or, when
  DPoP-bound, with scheme ``DPoP`` and a proof for this request (RFC 9449 §7.1:
  ``htm``/``htu``/``ath``, the key of ``cnf.jkt``, a ``jti`` used once).

Verified tokens are cached until they expire; every hit re-checks revocation, the
agent's state and the signing key (in-memory lookups), so a revoked token stops at
once. DPoP ``jti`` replay is tracked per process, like the SDK's resource-server guard.
Failures are 401 with ``WWW-Authenticate`` (RFC 6750 §3), or 403 ``insufficient_scope``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import ADMIN, RequestContext, event
from tessera.config import Settings
from tessera.errors import (
    InsufficientScope,
    InvalidClient,
    InvalidResourceDPoPProof,
    InvalidToken,
    TesseraError,
)
from tessera.runtime import Runtime
from tessera.sdk.verifier import ReplayCache
from tessera.server.oauth import runtime_of
from tessera.storage.single_use import single_use_key
from tessera.tokens.access_tokens import AccessToken
from tessera.tokens.client_auth import SingleUse
from tessera.tokens.dpop import verify_dpop_proof
from tessera.tokens.jose import JwsError

REALM = "tessera"
DPOP_ALGS = "ES256 EdDSA Ed25519"
ANONYMOUS = Actor(ActorType.SYSTEM, "anonymous")
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class ApiCaller:
    """Who is calling: ``kind`` is ``admin``, ``agent`` (with its token) or ``anonymous``."""

    kind: str
    context: RequestContext
    token: AccessToken | None = None


class VerifiedTokens:
    """Access tokens verified by the server's validator, kept until they expire."""

    def __init__(self, runtime: Runtime, max_entries: int = MAX_CACHED) -> None:
        self._runtime = runtime
        self._max = max_entries
        self._entries: OrderedDict[str, AccessToken] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str) -> AccessToken:
        """Raise :class:`JwsError` unless ``token`` is valid and live now."""
        runtime = self._runtime
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = runtime.clock.now()
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and now < cached.expires_at:
            if runtime.revocation.is_jti_revoked(cached.jti):
                raise JwsError("token has been revoked")
            if not runtime.revocation.agent_usable(cached.client_id, now):
                raise JwsError("the token's agent is not active")
            if runtime.keyring().verification_key(cached.kid, now) is None:
                raise JwsError(f"unknown or retired signing key '{cached.kid[:64]}'")
            return cached
        verified = runtime.validator.verify(token)
        if now < verified.expires_at:
            with self._lock:
                self._entries[key] = verified
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return verified


@dataclass
class _AuthState:
    tokens: VerifiedTokens
    replays: ReplayCache


def _state(request: Request) -> _AuthState:
    state: _AuthState | None = getattr(request.app.state, "api_auth", None)
    if state is None:
        state = _AuthState(VerifiedTokens(runtime_of(request)), ReplayCache())
        request.app.state.api_auth = state
    return state


def verified_tokens(request: Request) -> VerifiedTokens:
    """The app's cache of verified tokens (also for tokens passed inside request bodies)."""
    return _state(request).tokens


def _quoted(value: str) -> str:
    return value.replace("\\", "'").replace('"', "'")


def challenge(
    scope: str, error: str | None = None, description: str | None = None, *, dpop: bool = False
) -> str:
    """``WWW-Authenticate``: both schemes when no credentials came, else the scheme used."""
    if error is None:
        return f'Bearer realm="{REALM}", scope="{scope}", DPoP realm="{REALM}", algs="{DPOP_ALGS}"'
    params = f'realm="{REALM}", error="{error}"'
    if description:
        params += f', error_description="{_quoted(description)}"'
    if error == "insufficient_scope":
        params += f', scope="{scope}"'
    return f'DPoP {params}, algs="{DPOP_ALGS}"' if dpop else f"Bearer {params}"


def _check_proof(request: Request, runtime: Runtime, state: _AuthState, token: str, jkt: str) -> SingleUse:
    """Verify the proof (RFC 9449 §7.1); return its ``jti`` claim, to be made single use in the database."""
    proofs = request.headers.getlist("dpop")
    if len(proofs) != 1:
        raise JwsError("exactly one dpop proof is required")
    now = runtime.clock.now()
    settings = runtime.settings
    proof = verify_dpop_proof(
        proofs[0],
        method=request.method,
        url=f"{runtime.issuer}{request.url.path}",
        now=now,
        max_age=settings.dpop_proof_max_age,
        leeway=settings.clock_leeway,
        access_token=token,
    )
    if proof.jkt != jkt:
        raise JwsError("dpop proof key does not match the token")
    expires = proof.iat + settings.dpop_proof_max_age + 2 * settings.clock_leeway
    # The in-process cache turns away most replays cheaply; the database claim (made by the
    # dependency, off the event loop) makes the proof single use across every replica.
    if not state.replays.first_use(f"{proof.jkt}|{proof.jti}", expires, now):
        raise JwsError("dpop proof has already been used")
    return SingleUse(single_use_key("api-dpop", proof.jkt, proof.jti), expires)


def _authenticate(request: Request, scope: str, anonymous: bool) -> ApiCaller:
    runtime = runtime_of(request)
    ip = request.client.host if request.client else None
    header = request.headers.get("authorization")
    if not header:
        if anonymous:
            return ApiCaller("anonymous", RequestContext(ANONYMOUS, ip))
        raise InvalidToken("missing access token", headers={"WWW-Authenticate": challenge(scope)})
    scheme, _, credential = header.partition(" ")
    scheme, credential = scheme.lower(), credential.strip()
    dpop = scheme == "dpop"
    if scheme not in ("bearer", "dpop") or not credential:
        raise InvalidToken(
            "authorization must be 'Bearer <token>' or 'DPoP <token>'",
            headers={"WWW-Authenticate": challenge(scope)},
        )
    if not dpop and runtime.admin.verify(credential):
        return ApiCaller("admin", RequestContext(ADMIN, ip))
    state = _state(request)
    try:
        token = state.tokens.verify(credential)
    except JwsError as exc:
        raise InvalidToken(
            str(exc), headers={"WWW-Authenticate": challenge(scope, "invalid_token", str(exc), dpop=dpop)}
        ) from exc
    if runtime.issuer not in token.audience:
        reason = "token is not meant for this server"
        raise InvalidToken(
            reason, headers={"WWW-Authenticate": challenge(scope, "invalid_token", reason, dpop=dpop)}
        )
    if token.cnf_jkt is not None:
        if not dpop:
            reason = "dpop-bound token presented as a bearer token"
            raise InvalidToken(
                reason, headers={"WWW-Authenticate": challenge(scope, "invalid_token", reason, dpop=True)}
            )
        try:
            request.state.dpop_claim = _check_proof(request, runtime, state, credential, token.cnf_jkt)
        except JwsError as exc:
            header_value = challenge(scope, "invalid_dpop_proof", str(exc), dpop=True)
            raise InvalidResourceDPoPProof(str(exc), headers={"WWW-Authenticate": header_value}) from exc
    elif dpop:
        reason = "token is not dpop-bound"
        raise InvalidToken(
            reason, headers={"WWW-Authenticate": challenge(scope, "invalid_token", reason, dpop=True)}
        )
    if scope not in token.scopes:
        reason = f"token lacks scope '{scope}'"
        header_value = challenge(scope, "insufficient_scope", reason, dpop=dpop)
        raise InsufficientScope(reason, headers={"WWW-Authenticate": header_value})
    return ApiCaller("agent", RequestContext(Actor(ActorType.AGENT, token.client_id), ip), token)


def _claim_proof(runtime: Runtime, claim: SingleUse, scope: str) -> None:
    try:
        runtime.issuer_service.claim_single_use(claim)
    except InvalidClient as exc:
        reason = "dpop proof has already been used"
        header_value = challenge(scope, "invalid_dpop_proof", reason, dpop=True)
        raise InvalidResourceDPoPProof(reason, headers={"WWW-Authenticate": header_value}) from exc


def token_caller(
    scope: str, *, anonymous: Callable[[Settings], bool] | None = None
) -> Callable[[Request], Awaitable[ApiCaller]]:
    """A dependency requiring a token with ``scope`` or the admin credential.

    ``anonymous(settings)`` true lets requests without ``Authorization`` through (as the
    ``system/anonymous`` actor); a credential that is sent is always checked.
    """

    async def dependency(request: Request) -> ApiCaller:
        runtime = runtime_of(request)
        allow = anonymous(runtime.settings) if anonymous is not None else False
        try:
            caller = _authenticate(request, scope, allow)
            claim: SingleUse | None = getattr(request.state, "dpop_claim", None)
            if claim is not None:
                await run_in_threadpool(_claim_proof, runtime, claim, scope)
            return caller
        except TesseraError as exc:
            ip = request.client.host if request.client else None
            runtime.auditor.record_async(
                event(
                    "api.denied",
                    RequestContext(Actor(ActorType.AGENT, None), ip),
                    data={"route": f"{request.method} {request.url.path}"[:200], "error": exc.error},
                )
            )
            raise

    return dependency
