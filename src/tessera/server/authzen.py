"""OpenID AuthZEN Authorization API 1.0: metadata (§9), evaluation (§6), evaluations (§7), search (§8).

Callers authenticate with a Tessera access token carrying scope ``authzen`` (Bearer
or DPoP) or the admin credential (:mod:`tessera.server.api_auth`); with
``TESSERA_AUTHZEN_ALLOW_ANONYMOUS=true`` (certification runs only) they need not.
Requests must be ``Content-Type: application/json`` (§10.1); ``X-Request-ID`` is
echoed on every answer of these routes, errors included (§10.1.3).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from tessera.config import Settings
from tessera.errors import InvalidRequest, TesseraError
from tessera.policy.authzen import AuthZenService
from tessera.policy.authzen_requests import (
    ACTION,
    RESOURCE,
    SUBJECT,
    load_request,
    parse_batch,
    parse_evaluation,
    parse_search,
)
from tessera.policy.authzen_search import AuthZenSearch
from tessera.server.api_auth import ApiCaller, token_caller, verified_tokens
from tessera.server.errors import NO_STORE, error_response
from tessera.server.oauth import runtime_of

SCOPE = "authzen"
JSON = "application/json"
EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
SEARCH_PATHS = {target: f"/access/v1/search/{target}" for target in (SUBJECT, RESOURCE, ACTION)}
#: Registered PDP capability URNs (§9.1.2) Tessera supports; none are registered yet,
#: and a parameter without values is omitted (§9.2.2).
CAPABILITIES: tuple[str, ...] = ()


class AuthZenRoute(APIRoute):
    """Answers ``TesseraError`` here, so that every answer echoes ``X-Request-ID``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except TesseraError as exc:
                response = error_response(exc)
            request_id = request.headers.get("x-request-id")
            if request_id is not None:
                response.headers["X-Request-ID"] = request_id
            return response

        return route


def _anonymous_allowed(settings: Settings) -> bool:
    return settings.authzen_allow_anonymous


Caller = Annotated[ApiCaller, Depends(token_caller(SCOPE, anonymous=_anonymous_allowed))]
router = APIRouter(route_class=AuthZenRoute)


@dataclass
class _AuthZen:
    service: AuthZenService
    search: AuthZenSearch


def _authzen(request: Request) -> _AuthZen:
    state: _AuthZen | None = getattr(request.app.state, "authzen", None)
    if state is None:
        runtime = runtime_of(request)
        service = AuthZenService(
            runtime.decisions,
            runtime.entities,
            check_token=verified_tokens(request).verify,
            auditor=runtime.auditor,
            ids=runtime.ids,
        )
        state = _AuthZen(service, AuthZenSearch(service))
        request.app.state.authzen = state
    return state


async def _body(request: Request) -> dict[str, Any]:
    """§10.1: ``Content-Type: application/json`` and a JSON object, or 400."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise InvalidRequest(f"content-type must be {JSON}")
    return load_request(await request.body())


def pdp_metadata(base: str) -> dict[str, Any]:
    """§9.1: the PDP identifier is the issuer; every endpoint hangs off it."""
    metadata: dict[str, Any] = {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}{EVALUATION_PATH}",
        "access_evaluations_endpoint": f"{base}{EVALUATIONS_PATH}",
        "search_subject_endpoint": f"{base}{SEARCH_PATHS[SUBJECT]}",
        "search_resource_endpoint": f"{base}{SEARCH_PATHS[RESOURCE]}",
        "search_action_endpoint": f"{base}{SEARCH_PATHS[ACTION]}",
    }
    if CAPABILITIES:
        metadata["capabilities"] = list(CAPABILITIES)
    return metadata


@router.get("/.well-known/authzen-configuration")
async def configuration(request: Request) -> JSONResponse:
    return JSONResponse(
        pdp_metadata(runtime_of(request).issuer), headers={"Cache-Control": "public, max-age=300"}
    )


@router.post(EVALUATION_PATH)
async def evaluation(request: Request, caller: Caller) -> JSONResponse:
    asked = parse_evaluation(await _body(request))
    answer = await run_in_threadpool(_authzen(request).service.evaluate, asked, caller.context)
    return JSONResponse(answer, headers=NO_STORE)


@router.post(EVALUATIONS_PATH)
async def evaluations(request: Request, caller: Caller) -> JSONResponse:
    batch = parse_batch(await _body(request))
    answer = await run_in_threadpool(_authzen(request).service.evaluate_batch, batch, caller.context)
    return JSONResponse(answer, headers=NO_STORE)


async def _search(request: Request, caller: ApiCaller, target: str) -> JSONResponse:
    asked = parse_search(await _body(request), target)
    answer = await run_in_threadpool(_authzen(request).search.search, asked, caller.context)
    return JSONResponse(answer, headers=NO_STORE)


@router.post(SEARCH_PATHS[SUBJECT])
async def search_subject(request: Request, caller: Caller) -> JSONResponse:
    return await _search(request, caller, SUBJECT)


@router.post(SEARCH_PATHS[RESOURCE])
async def search_resource(request: Request, caller: Caller) -> JSONResponse:
    return await _search(request, caller, RESOURCE)


@router.post(SEARCH_PATHS[ACTION])
async def search_action(request: Request, caller: Caller) -> JSONResponse:
    return await _search(request, caller, ACTION)
