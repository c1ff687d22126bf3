"""The ASGI middleware: verified identity on the request, 401 with WWW-Authenticate otherwise."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.runtime import Runtime
from tessera.sdk.asgi import TesseraAuthMiddleware
from tessera.sdk.verifier import JwksCache, TokenVerifier
from tests.unit.helpers import Client, local_verifier, private_key, proof, request_token

BASE = "https://api.example"


async def whoami(request: Request) -> JSONResponse:
    verified = request.state.tessera
    return JSONResponse(
        {"agent": verified.agent_id, "jkt": verified.dpop_jkt, "scopes": list(verified.scopes)}
    )


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


class Http:
    """Requests to the wrapped app over httpx's ASGI transport, each run to completion on its own loop."""

    def __init__(self, asgi_app: Any) -> None:
        self._app = asgi_app

    def request(self, method: str, path: str, headers: Any = None) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                return await http.request(method, path, headers=headers)

        return anyio.run(send)

    def get(self, path: str, headers: Any = None) -> httpx.Response:
        return self.request("GET", path, headers)

    def post(self, path: str, headers: Any = None) -> httpx.Response:
        return self.request("POST", path, headers)


def app(verifier: TokenVerifier, *, public_url: str | None = BASE) -> Http:
    inner = Starlette(routes=[Route("/tickets", whoami, methods=["GET", "POST"]), Route("/health", health)])
    return Http(TesseraAuthMiddleware(inner, verifier, public_url=public_url, exempt_paths={"/health"}))


def test_no_token_is_a_401_with_a_challenge(runtime: Runtime) -> None:
    response = app(local_verifier(runtime)).get("/tickets")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_request"
    # RFC 6750 §3.1: no credentials at all, so the challenge carries no error code.
    assert response.headers["www-authenticate"] == 'Bearer realm="tessera"'


def test_exempt_paths_pass_through(runtime: Runtime) -> None:
    assert app(local_verifier(runtime)).get("/health").json() == {"ok": True}


def test_a_bearer_token_reaches_the_app(runtime: Runtime, client: Client) -> None:
    token = request_token(runtime, client, scope="tickets:read").access_token
    response = app(local_verifier(runtime)).get("/tickets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"agent": client.id, "jkt": None, "scopes": ["tickets:read"]}


def test_a_dpop_request(runtime: Runtime, client: Client) -> None:
    key = private_key()
    token = request_token(runtime, client, dpop_key=key).access_token
    http = app(local_verifier(runtime))
    dpop = proof(runtime, key, method="POST", url=f"{BASE}/tickets", access_token=token)
    response = http.post("/tickets?x=1", headers={"Authorization": f"DPoP {token}", "DPoP": dpop})
    assert response.status_code == 200
    assert response.json()["jkt"] == key.thumbprint()
    replayed = http.post("/tickets", headers={"Authorization": f"DPoP {token}", "DPoP": dpop})
    assert replayed.status_code == 401
    assert replayed.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')


def test_a_proof_for_another_url_is_refused(runtime: Runtime, client: Client) -> None:
    key = private_key()
    token = request_token(runtime, client, dpop_key=key).access_token
    dpop = proof(runtime, key, method="GET", url="https://other.example/tickets", access_token=token)
    response = app(local_verifier(runtime)).get(
        "/tickets", headers={"Authorization": f"DPoP {token}", "DPoP": dpop}
    )
    assert response.status_code == 401
    assert "htu" in response.json()["error_description"]


def test_two_dpop_headers_are_refused(runtime: Runtime, client: Client) -> None:
    key = private_key()
    token = request_token(runtime, client, dpop_key=key).access_token
    proofs = [proof(runtime, key, method="GET", url=f"{BASE}/tickets", access_token=token) for _ in range(2)]
    headers = [("Authorization", f"DPoP {token}"), ("DPoP", proofs[0]), ("DPoP", proofs[1])]
    response = app(local_verifier(runtime)).get("/tickets", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_dpop_proof"


def test_without_public_url_the_request_url_is_used(runtime: Runtime, client: Client) -> None:
    key = private_key()
    token = request_token(runtime, client, dpop_key=key).access_token
    dpop = proof(runtime, key, method="GET", url=f"{BASE}/tickets", access_token=token)
    http = app(local_verifier(runtime), public_url=None)
    assert http.get("/tickets", headers={"Authorization": f"DPoP {token}", "DPoP": dpop}).status_code == 200


def test_an_unknown_kid_is_fetched_off_the_event_loop(runtime: Runtime, client: Client) -> None:
    fetched: list[str] = []

    def jwks(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, json=runtime.keyring().jwks(runtime.clock.now()))

    cache = JwksCache(
        f"{runtime.issuer}/.well-known/jwks.json", http=httpx.Client(transport=httpx.MockTransport(jwks))
    )
    verifier = TokenVerifier(
        issuer=runtime.issuer, jwks=cache, audience=runtime.issuer, clock=runtime.clock.now
    )
    token = request_token(runtime, client).access_token
    response = app(verifier).get("/tickets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert fetched == [f"{runtime.issuer}/.well-known/jwks.json"]


@pytest.mark.parametrize("forged", ["Bearer a.b.c", "Bearer " + "x" * 10_000, "DPoP e30.e30."])
def test_forged_tokens_are_401s(runtime: Runtime, forged: str) -> None:
    response = app(local_verifier(runtime)).get("/tickets", headers={"Authorization": forged})
    assert response.status_code == 401
    assert response.json()["error"] in ("invalid_token", "invalid_request")
