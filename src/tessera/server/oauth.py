"""OAuth 2.0 endpoints: metadata (RFC 8414), JWKS, token, introspection (RFC 7662), revocation (RFC 7009)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import ADMIN, RequestContext
from tessera.errors import InvalidClient, InvalidRequest, TesseraError
from tessera.runtime import Runtime
from tessera.server.errors import NO_STORE, error_response
from tessera.tokens.grants import PendingApproval
from tessera.tokens.grants.token_exchange import ISSUED_TOKEN_TYPE, SUBJECT_TOKEN_TYPES
from tessera.tokens.introspection import Caller
from tessera.tokens.requests import build_token_request

FORM = "application/x-www-form-urlencoded"


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def read_form(request: Request) -> list[tuple[str, str]]:
    """Parse an ``application/x-www-form-urlencoded`` body strictly (RFC 6749 §3.2, §2.3.1)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise InvalidRequest(f"content-type must be {FORM}")
    body = await request.body()
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=False, strict_parsing=bool(text), max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("malformed form body") from exc


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def metadata(runtime: Runtime) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata."""
    issuer = runtime.issuer
    methods = ["private_key_jwt"]
    if runtime.settings.allow_client_secret:
        methods += ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "grant_types_supported": runtime.token_endpoint.grant_types,
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA", "Ed25519"],
        "introspection_endpoint_auth_methods_supported": [*methods, "bearer"],
        "revocation_endpoint_auth_methods_supported": [*methods, "bearer"],
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "Ed25519"],
        "authorization_details_types_supported": ["agent_task"],
        # RFC 8693 has no registered metadata for these; listed so clients can discover them.
        "token_exchange_subject_token_types_supported": sorted(SUBJECT_TOKEN_TYPES),
        "token_exchange_issued_token_types_supported": [ISSUED_TOKEN_TYPE],
        # OpenID CIBA Core 1.0 §4: approvals are polled (or pinged) at the token endpoint.
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "scopes_supported": [],
        "response_types_supported": [],
        "code_challenge_methods_supported": [],
    }


router = APIRouter()


@router.get("/.well-known/oauth-authorization-server")
async def authorization_server_metadata(request: Request) -> JSONResponse:
    return JSONResponse(metadata(runtime_of(request)))


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    return JSONResponse(
        runtime.keyring().jwks(runtime.clock.now()), headers={"Cache-Control": "public, max-age=60"}
    )


@router.post("/oauth2/token")
async def token(request: Request) -> Response:
    runtime = runtime_of(request)
    endpoint = runtime.token_endpoint
    nonce_header = {}
    try:
        pairs = await read_form(request)
        token_request = build_token_request(
            pairs,
            method=request.method,
            url=runtime.settings.token_endpoint,
            authorization=request.headers.get("authorization"),
            dpop_headers=request.headers.getlist("dpop"),
            client_ip=request.client.host if request.client else None,
        )
        issued = await run_in_threadpool(endpoint.handle, token_request)
    except PendingApproval as pending:
        # OpenID CIBA Core 1.0 §7.3: a person must approve; poll with the CIBA grant.
        return JSONResponse(pending.body, headers=NO_STORE)
    except TesseraError as exc:
        if (
            isinstance(exc, InvalidClient)
            and (request.headers.get("authorization") or "")[:6].lower() == "basic "
        ):
            exc.headers.setdefault("WWW-Authenticate", 'Basic realm="tessera"')
        return error_response(exc)
    fresh = endpoint.fresh_nonce()
    if fresh:
        nonce_header["DPoP-Nonce"] = fresh
    return JSONResponse(issued.response(), headers={**NO_STORE, **nonce_header})


async def _caller(request: Request, params: dict[str, str]) -> Caller:
    """The admin credential as a Bearer token, or client authentication as at the token endpoint."""
    runtime = runtime_of(request)
    token = bearer_token(request)
    if token is not None:
        if runtime.admin.verify(token):
            return Caller(admin=True, context=RequestContext(ADMIN, ip=_ip(request)))
        raise InvalidClient(
            "invalid bearer credential", headers={"WWW-Authenticate": 'Bearer realm="tessera"'}
        )
    client = await run_in_threadpool(
        runtime.authenticator.authenticate, params, request.headers.get("authorization"), runtime.clock.now()
    )
    if not client.agent.is_usable_at(runtime.clock.now()):
        raise InvalidClient(
            f"agent '{client.agent.id}' is {client.agent.state.value}; it cannot call this endpoint"
        )
    if client.single_use is not None:
        await run_in_threadpool(runtime.issuer_service.claim_single_use, client.single_use)
    actor = Actor(ActorType.AGENT, client.agent.id)
    return Caller(agent=client.agent, context=RequestContext(actor, ip=_ip(request)))


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _single_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"parameter '{name[:40]}' is repeated")
        params[name] = value
    return params


async def _token_and_caller(request: Request) -> tuple[str, Caller]:
    """The ``token`` parameter and the authenticated caller (RFC 7662 §2.1, RFC 7009 §2.1)."""
    params = _single_params(await read_form(request))
    token_value = params.get("token")
    if not token_value:
        raise InvalidRequest("missing token")
    return token_value, await _caller(request, params)


@router.post("/oauth2/introspect")
async def introspect(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        token_value, caller = await _token_and_caller(request)
    except TesseraError as exc:
        return error_response(exc)
    body, _ = await run_in_threadpool(runtime.introspector.introspect, token_value, caller, caller.context)
    return JSONResponse(body, headers=NO_STORE)


@router.post("/oauth2/revoke")
async def revoke(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        token_value, caller = await _token_and_caller(request)
        await run_in_threadpool(runtime.revoker.revoke_token, token_value, caller, caller.context)
    except TesseraError as exc:
        return error_response(exc)
    return Response(status_code=200, headers=NO_STORE)
