"""The policy snapshot for in-process PDPs (``tessera.sdk.pdp.LocalPDP``).

``GET /policy/v1/snapshot`` returns the active bundle's files and the registered
resources and agents as Cedar entities, with an ``ETag`` of
``"<policy version>.<entity generation>"``. A PDP in a PEP polls it with
``If-None-Match`` and gets ``304`` until something changes; the server's own
copy is kept current by the change feed, so a change anywhere reaches the PEP
within one poll. Callers need a token with scope ``authzen`` (or the admin
credential); agent entities carry no secrets.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from tessera.server.api_auth import ApiCaller, token_caller
from tessera.server.oauth import runtime_of

router = APIRouter(prefix="/policy/v1")
Caller = Annotated[ApiCaller, Depends(token_caller("authzen"))]


@router.get("/snapshot")
def snapshot(request: Request, _caller: Caller) -> Response:
    runtime = runtime_of(request)
    compiled = runtime.pdp.compiled
    etag = f'"{compiled.version}.{runtime.entities.generation}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    body: dict[str, Any] = {
        "version": compiled.version,
        "generation": runtime.entities.generation,
        "files": compiled.bundle.files,
        **runtime.entities.export(),
    }
    return JSONResponse(body, headers={"ETag": etag, "Cache-Control": "no-cache"})
