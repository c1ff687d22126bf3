"""The SDK end to end: an agent calls a resource server guarded by ``TesseraAuthMiddleware``.

Tessera and the resource server (``resource_app.py``) each run under uvicorn in
their own process on loopback; the agent uses ``AgentClient`` with DPoP
(RFC 9449 §7) and the middleware verifies locally against the cached JWKS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.sdk.agent import AgentClient, TokenResponse
from tests.integration.helpers import eventually, jwt_parts, register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resource_server(
    sqlite_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = ServerProcess(
        home=tmp_path_factory.mktemp("resource") / "home",
        database_url="unused",
        app="tests.integration.resource_app:create_app",
        env={"RS_ISSUER": sqlite_server.url, "PYTHONPATH": path, "RS_JWKS_MIN_INTERVAL": "0.5"},
    )
    proc.env["RS_AUDIENCE"] = proc.url
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def agent(sqlite_server: ServerProcess) -> Iterator[AgentClient]:
    with sqlite_server.admin() as admin:
        agent_id, key, _ = register_agent(admin, "caller", scopes=["tickets:read"])
    client = AgentClient(sqlite_server.url, agent_id, key)
    yield client
    client.close()


@pytest.fixture
def token(agent: AgentClient, resource_server: ServerProcess) -> TokenResponse:
    return agent.fetch_token(resources=[resource_server.url], task={"task_id": "T-7", "purpose": "read"})


def deny_body(response: httpx.Response, scheme: str, error: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f"{scheme} "), challenge
    assert f'error="{error}"' in challenge, challenge
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert "\n" not in body["error_description"]
    return body


def test_dpop_bound_call_reaches_the_app_with_the_identity(
    agent: AgentClient, token: TokenResponse, resource_server: ServerProcess
) -> None:
    assert token.token_type == "DPoP"
    for method in ("GET", "POST"):
        response = agent.request(method, f"{resource_server.url}/whoami", token)
        assert response.status_code == 200, response.text
        identity = response.json()
        assert identity["agent_id"] == agent.agent_id
        assert identity["scopes"] == ["tickets:read"]
        assert identity["task_id"] == "T-7"
        assert identity["dpop_jkt"] == jwt_parts(token.access_token)[1]["cnf"]["jkt"]
        assert identity["method"] == method
    # Exempt paths need no token.
    assert httpx.get(f"{resource_server.url}/healthz").status_code == 200


def test_missing_or_misused_credentials_are_refused(
    agent: AgentClient, token: TokenResponse, resource_server: ServerProcess
) -> None:
    url = f"{resource_server.url}/whoami"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="tessera"'  # RFC 6750 §3.1: no error code
    assert missing.json()["error"] == "invalid_request"
    deny_body(httpx.get(url, headers={"Authorization": "Basic Zm9vOmJhcg=="}), "Bearer", "invalid_request")

    # A DPoP-bound token presented as a bearer token (RFC 9449 §7.1).
    as_bearer = httpx.get(url, headers={"Authorization": f"Bearer {token.access_token}"})
    body = deny_body(as_bearer, "DPoP", "invalid_token")
    assert "bearer" in body["error_description"]

    # DPoP scheme without a proof.
    no_proof = httpx.get(url, headers={"Authorization": f"DPoP {token.access_token}"})
    deny_body(no_proof, "DPoP", "invalid_dpop_proof")

    # A proof for another method, or another URL.
    headers = agent.auth_headers("POST", url, token)
    deny_body(httpx.get(url, headers=headers), "DPoP", "invalid_dpop_proof")
    headers = agent.auth_headers("GET", f"{resource_server.url}/elsewhere", token)
    deny_body(httpx.get(url, headers=headers), "DPoP", "invalid_dpop_proof")

    # A replayed proof: the first use passes, the second is refused.
    headers = agent.auth_headers("GET", url, token)
    assert httpx.get(url, headers=headers).status_code == 200
    body = deny_body(httpx.get(url, headers=headers), "DPoP", "invalid_dpop_proof")
    assert "already been used" in body["error_description"]

    # A token for another audience (the default: the issuer itself).
    other = agent.fetch_token()
    deny_body(agent.request("GET", url, other), "Bearer", "invalid_token")

    # A tampered token.
    forged = TokenResponse(token.access_token[:-4] + "AAAA", "DPoP", 300, "")
    deny_body(agent.request("GET", url, forged), "Bearer", "invalid_token")


def test_bearer_token_without_dpop(sqlite_server: ServerProcess, resource_server: ServerProcess) -> None:
    with sqlite_server.admin() as admin:
        agent_id, key, _ = register_agent(admin, "plain", scopes=["tickets:read"])
    client = AgentClient(sqlite_server.url, agent_id, key, dpop=False)
    try:
        token = client.fetch_token(resources=[resource_server.url])
        assert token.token_type == "Bearer"
        url = f"{resource_server.url}/whoami"
        response = client.request("GET", url, token)
        assert response.status_code == 200, response.text
        assert response.json()["dpop_jkt"] is None
        # A bearer token presented with the DPoP scheme is refused.
        misused = httpx.get(url, headers={"Authorization": f"DPoP {token.access_token}"})
        deny_body(misused, "DPoP", "invalid_token")
    finally:
        client.close()


def test_unknown_kid_after_rotation_refreshes_the_jwks(
    agent: AgentClient, token: TokenResponse, sqlite_server: ServerProcess, resource_server: ServerProcess
) -> None:
    """Runs last in this module: it rotates the module server's signing key."""
    url = f"{resource_server.url}/whoami"
    assert agent.request("GET", url, token).status_code == 200  # the JWKS is cached now
    with sqlite_server.admin() as admin:
        rotated = admin.post("/admin/v1/keys/rotate", json={"immediate": True})
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    fresh = agent.fetch_token(resources=[resource_server.url])
    assert jwt_parts(fresh.access_token)[0]["kid"] == new_kid

    def accepted() -> dict[str, Any] | None:
        response = agent.request("GET", url, fresh)
        return response.json() if response.status_code == 200 else None

    # The refresh is rate-limited (RS_JWKS_MIN_INTERVAL), hence a bounded retry, not a single try.
    assert eventually(accepted, "resource server accepts the new kid")["kid"] == new_kid
    # The old key still verifies the tokens it signed.
    old = agent.request("GET", url, token)
    assert old.status_code == 200, old.text
