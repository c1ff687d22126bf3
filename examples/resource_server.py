"""A resource server protected by Tessera: local verification of token and DPoP proof.

Run it beside a Tessera server (`make run`):

    .venv/bin/python examples/resource_server.py          # serves http://127.0.0.1:8500

Every request must carry a Tessera access token whose ``aud`` is this server
(``http://127.0.0.1:8500``) and, if the token is DPoP-bound, a DPoP proof for the
request. ``GET /tickets`` also needs the ``tickets:read`` scope. Set
``INTROSPECT=1`` to ask Tessera about revocation on every request as well.
"""

from __future__ import annotations

import os

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.sdk import TokenVerifier
from tessera.sdk.asgi import TesseraAuthMiddleware

TESSERA_URL = os.environ.get("TESSERA_URL", "http://127.0.0.1:8400")
PUBLIC_URL = os.environ.get("RESOURCE_URL", "http://127.0.0.1:8500")
ADMIN_TOKEN_FILE = os.path.join(os.environ.get("TESSERA_HOME", ".tessera"), "admin-token")


def still_active(token: str) -> bool:
    """Ask Tessera (RFC 7662) whether the token is revoked; local checks cannot see that.

    A real resource server would authenticate as its own agent (private_key_jwt)
    and be named in the token's ``aud``; the admin credential keeps the example short.
    """
    with open(ADMIN_TOKEN_FILE) as handle:
        admin = handle.read().strip()
    answer = httpx.post(
        f"{TESSERA_URL}/oauth2/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=5.0,
    )
    return answer.status_code == 200 and answer.json().get("active") is True


async def tickets(request: Request) -> JSONResponse:
    identity = request.state.tessera  # a tessera.sdk.VerifiedRequest
    if "tickets:read" not in identity.scopes:
        return JSONResponse({"error": "insufficient_scope"}, status_code=403)
    if os.environ.get("INTROSPECT") == "1" and not still_active(bearer(request)):
        return JSONResponse(
            {"error": "invalid_token", "error_description": "token has been revoked"},
            status_code=401,
            headers={"WWW-Authenticate": 'DPoP error="invalid_token"'},
        )
    return JSONResponse(
        {
            "agent": identity.agent_id,
            "task": identity.task_id,
            "dpop_bound": identity.dpop_jkt is not None,
            "tickets": [{"id": "T-1", "title": "printer on fire"}],
        }
    )


def bearer(request: Request) -> str:
    """The access token itself, from ``Authorization: DPoP <token>`` or ``Bearer <token>``."""
    return request.headers["authorization"].partition(" ")[2].strip()


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


verifier = TokenVerifier.for_server(TESSERA_URL, audience=PUBLIC_URL)
app = TesseraAuthMiddleware(
    Starlette(routes=[Route("/tickets", tickets), Route("/healthz", health)]),
    verifier,
    public_url=PUBLIC_URL,
    exempt_paths={"/healthz"},
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(PUBLIC_URL.rsplit(":", 1)[1]))
