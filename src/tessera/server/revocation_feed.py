"""``GET /events/v1/revocations``: the revocation feed for locally verifying PEPs (long poll).

``after`` is the cursor of the last answer (0, or absent, for a snapshot);
``wait`` (0-30 s) holds the request until something newer arrives. Answers:
``{"cursor", "reset": true, "revoked": {jti: exp}, "agents": {id: state},
"kills": [rule]}`` or ``{"cursor", "reset": false, "events": [...]}``, or
``204`` when nothing changed within ``wait``. Callers need a token with scope
``authzen`` (as for the policy snapshot) or the admin credential.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from tessera.server.api_auth import ApiCaller, token_caller
from tessera.server.oauth import runtime_of

router = APIRouter(prefix="/events/v1")
Caller = Annotated[ApiCaller, Depends(token_caller("authzen"))]
POLL_STEP = 0.01


@router.get("/revocations")
async def revocations(
    request: Request,
    _caller: Caller,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    wait: Annotated[float, Query(ge=0, le=30)] = 0.0,
) -> Response:
    feed = runtime_of(request).revocation_feed
    deadline = time.monotonic() + wait
    while True:
        answer: dict[str, Any] | None = feed.since(after)
        if answer is not None:
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})
        if time.monotonic() >= deadline or await request.is_disconnected():
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        await asyncio.sleep(POLL_STEP)
