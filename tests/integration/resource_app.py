"""A small resource server protected by the SDK's middleware, served by uvicorn in its own process.

``RS_ISSUER`` is the Tessera server, ``RS_AUDIENCE`` this server's resource identifier.
``RS_JWKS_MIN_INTERVAL`` shortens the JWKS cache's refresh rate limit (default 10 s)
so a test can rotate keys twice within seconds.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tessera.sdk.asgi import TesseraAuthMiddleware
from tessera.sdk.verifier import JwksCache, TokenVerifier, VerifiedRequest


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


async def whoami(request: Request) -> Response:
    verified: VerifiedRequest = request.state.tessera
    return JSONResponse(
        {
            "agent_id": verified.agent_id,
            "scopes": list(verified.scopes),
            "task_id": verified.task_id,
            "dpop_jkt": verified.dpop_jkt,
            "kid": verified.token.kid,
            "method": request.method,
        }
    )


def create_app() -> TesseraAuthMiddleware:
    verifier = TokenVerifier.for_server(os.environ["RS_ISSUER"], audience=os.environ["RS_AUDIENCE"])
    if "RS_JWKS_MIN_INTERVAL" in os.environ:
        verifier.jwks = JwksCache(
            f"{verifier.issuer}/.well-known/jwks.json",
            min_interval=float(os.environ["RS_JWKS_MIN_INTERVAL"]),
        )
    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/whoami", whoami, methods=["GET", "POST"])],
    )
    return TesseraAuthMiddleware(app, verifier, exempt_paths={"/healthz"})
