"""The in-process PDP (``tessera.sdk.pdp.LocalPDP``), its snapshot route, and the ASGI guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tessera.policy.entities import Uid
from tessera.policy.service import starter_bundle
from tessera.sdk.agent import AgentClient, TokenResponse
from tessera.sdk.guard import protect
from tessera.sdk.pdp import LocalPDP
from tessera.sdk.verifier import TokenVerifier
from tests.integration.helpers import register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

API = "https://api.example"
PUBLIC_READS = """
@id("public-reads")
permit (principal is Agent, action == Action::"read", resource is Resource)
when { resource has uri && resource.uri like "https://api.example/public/*" };
"""


def apply(server: ServerProcess, extra: str) -> str:
    files = dict(starter_bundle().files)
    files["local.cedar"] = extra
    with server.admin() as admin:
        response = admin.post("/admin/v1/policies", json={"files": files})
    assert response.status_code == 201, response.text
    version: str = response.json()["version"]
    return version


@pytest.fixture
def pdp(server: ServerProcess) -> Iterator[LocalPDP]:
    local = LocalPDP.with_admin_token(server.url, server.admin_token)
    yield local
    local.stop()


def test_the_snapshot_needs_a_credential_and_answers_304_until_something_changes(
    server: ServerProcess,
) -> None:
    assert httpx.get(f"{server.url}/policy/v1/snapshot").status_code == 401
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    first = httpx.get(f"{server.url}/policy/v1/snapshot", headers=headers)
    assert first.status_code == 200
    assert first.json()["version"] == starter_bundle().version
    etag = first.headers["etag"]
    unchanged = httpx.get(f"{server.url}/policy/v1/snapshot", headers={**headers, "If-None-Match": etag})
    assert unchanged.status_code == 304
    with server.admin() as admin:
        register_agent(admin, "newcomer")
    changed = httpx.get(f"{server.url}/policy/v1/snapshot", headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def test_the_local_pdp_follows_applied_policy_and_agent_state(server: ServerProcess, pdp: LocalPDP) -> None:
    with server.admin() as admin:
        agent_id, _, _ = register_agent(admin, "reader")
    doc = Uid("Resource", "/public/report")
    uri = {doc.key: {"uid": doc.as_json(), "attrs": {"uri": f"{API}/public/report"}, "parents": []}}
    assert pdp.refresh()
    assert not pdp.decide(Uid("Agent", agent_id), "read", doc, entities=uri).allowed  # default deny
    version = apply(server, PUBLIC_READS)
    assert pdp.refresh()
    assert pdp.version == version
    allowed = pdp.decide(Uid("Agent", agent_id), "read", doc, entities=uri)
    assert allowed.allowed
    assert allowed.determining == ("public-reads",)
    with server.admin() as admin:
        assert admin.post(f"/admin/v1/agents/{agent_id}/suspend").status_code == 200
    assert pdp.refresh()
    denied = pdp.decide(Uid("Agent", agent_id), "read", doc, entities=uri)
    assert not denied.allowed
    assert denied.determining == ("forbid-inactive-agents",)
    # The server's own feed follower may touch the agent once more; after that, 304s.
    deadline = time.monotonic() + 10
    while pdp.refresh():
        assert time.monotonic() < deadline, "the snapshot never settled"
    assert not pdp.refresh()
    assert not pdp.decide(Uid("Agent", agent_id), "read", doc, entities=uri).allowed


async def whoami(scope: Any, receive: Any, send: Any) -> None:
    body = scope["state"]["tessera"].agent_id.encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def call(app: Any, client: AgentClient, token: TokenResponse, method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=API) as http:
            headers = client.auth_headers(method, f"{API}{path}", token)
            return await http.request(method, path, headers=headers)

    return asyncio.run(go())


def test_the_guard_asks_the_local_pdp_about_every_request(server: ServerProcess, pdp: LocalPDP) -> None:
    apply(server, PUBLIC_READS)
    with server.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "caller", scopes=["api"])
    agent = AgentClient(server.url, agent_id, private_jwk)
    try:
        token = agent.fetch_token(scope="api", resources=[API])
        pdp.refresh()
        verifier = TokenVerifier.for_server(server.url, audience=API)
        app = protect(whoami, verifier=verifier, pdp=pdp, public_url=API)
        read = call(app, agent, token, "GET", "/public/report")
        assert read.status_code == 200, read.text
        assert read.text == agent_id
        for method, path in (("GET", "/private/report"), ("DELETE", "/public/report")):
            refused = call(app, agent, token, method, path)
            assert refused.status_code == 403, (method, path, refused.text)
            assert refused.json()["error"] == "access_denied"
            assert refused.headers["x-tessera-decision"] == refused.json()["decision_id"]
        assert (
            call(
                app, agent, TokenResponse("not-a-token", "Bearer", 60, "api"), "GET", "/public/x"
            ).status_code
            == 401
        )
    finally:
        agent.close()
