"""``AgentClient`` end to end against the token endpoint, over an in-memory HTTP transport."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import TesseraError
from tessera.runtime import Runtime
from tessera.sdk.agent import AgentClient, TokenError
from tessera.server.oauth import metadata
from tessera.tokens.requests import build_token_request
from tests.unit.helpers import Client, local_verifier, register


class Server:
    """Routes the client's requests to a runtime as the HTTP layer would, and counts them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.token_requests = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        rt = self.runtime
        path = urlsplit(str(request.url)).path
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json=metadata(rt))
        if path == "/oauth2/token":
            self.token_requests += 1
            pairs = parse_qsl(request.content.decode())
            try:
                issued = rt.token_endpoint.handle(
                    build_token_request(
                        pairs,
                        method=request.method,
                        url=rt.settings.token_endpoint,
                        authorization=request.headers.get("authorization"),
                        dpop_headers=request.headers.get_list("dpop"),
                        client_ip="127.0.0.1",
                    )
                )
            except TesseraError as exc:
                return httpx.Response(exc.status, json=exc.body(), headers=exc.headers)
            nonce = rt.token_endpoint.fresh_nonce()
            return httpx.Response(200, json=issued.response(), headers={"DPoP-Nonce": nonce} if nonce else {})
        return httpx.Response(404)


def started(settings: Settings, clock: ManualClock, **overrides: object) -> Runtime:
    rt = Runtime(settings.model_copy(update=overrides), clock=clock)
    rt.start(background=False)
    return rt


@pytest.fixture
def wall_clock() -> ManualClock:
    """The client signs with the real time, so the server's manual clock starts there too."""
    return ManualClock(start=time.time())


@pytest.fixture
def live(settings: Settings, wall_clock: ManualClock) -> Iterator[Runtime]:
    rt = started(settings, wall_clock)
    yield rt
    rt.stop()


def agent_client(server: Server, client: Client, *, dpop: bool = True) -> AgentClient:
    http = httpx.Client(transport=httpx.MockTransport(server.handle))
    return AgentClient(server.runtime.issuer, client.id, client.private_jwk, dpop=dpop, http=http)


@pytest.mark.parametrize("kind", ["ES256", "Ed25519"])
def test_fetch_a_dpop_bound_task_token(live: Runtime, kind: str) -> None:
    client = register(live, kind=kind)
    agent = agent_client(Server(live), client)
    token = agent.fetch_token(
        scope="tickets:read", task={"task_id": "T-1", "purpose": "triage"}, expires_in=60
    )
    assert token.token_type == "DPoP"
    assert token.expires_in == 60
    assert token.scope == "tickets:read"
    assert token.authorization_details[0]["task_id"] == "T-1"
    headers = agent.auth_headers("GET", "https://api.example/tickets", token)
    verified = local_verifier(live).verify(
        headers["Authorization"], method="GET", url="https://api.example/tickets", dpop=headers["DPoP"]
    )
    assert verified.agent_id == client.id
    assert verified.task_id == "T-1"
    agent.close()


def test_a_bearer_token_when_dpop_is_off(live: Runtime) -> None:
    client = register(live)
    agent = agent_client(Server(live), client, dpop=False)
    token = agent.fetch_token(resources=["https://api.example/tickets"])
    assert token.token_type == "Bearer"
    assert agent.auth_headers("GET", "https://x", token) == {"Authorization": f"Bearer {token.access_token}"}


def test_the_client_answers_a_nonce_challenge(settings: Settings, wall_clock: ManualClock) -> None:
    rt = started(settings, wall_clock, dpop_nonce_required=True)
    try:
        server = Server(rt)
        agent = agent_client(server, register(rt))
        assert agent.fetch_token().token_type == "DPoP"
        assert server.token_requests == 2  # challenged once, then succeeded
        assert agent.fetch_token().token_type == "DPoP"
        assert server.token_requests == 3  # the nonce is remembered
    finally:
        rt.stop()


def test_errors_are_raised_with_their_wire_code(live: Runtime) -> None:
    agent = agent_client(Server(live), register(live))
    with pytest.raises(TokenError) as refused:
        agent.fetch_token(scope="admin")
    assert (refused.value.status, refused.value.error) == (400, "invalid_scope")
    with pytest.raises(TokenError) as bad_task:
        agent.fetch_token(task={"task_id": "T 1", "purpose": "p"})
    assert bad_task.value.error == "invalid_authorization_details"
    assert "task_id" in bad_task.value.description
