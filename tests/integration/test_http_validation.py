"""Input validation at the HTTP edge: every error is JSON with ``error`` and a one-line description.

RFC 6749 §3.2 (form bodies, no repeated parameters), §5.2 (error codes), RFC 8707 §2
(``resource`` may repeat), and the admin API's own errors (401, 400, 404, 409, 413).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from tessera.sdk.agent import AgentClient
from tests.integration.helpers import assert_error, assertion_form, jwt_parts, register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

FORM = "application/x-www-form-urlencoded"
FORM_HEADER = {"Content-Type": FORM}


@pytest.fixture(scope="module")
def http(sqlite_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def admin(sqlite_server: ServerProcess) -> Iterator[httpx.Client]:
    with sqlite_server.admin() as client:
        yield client


@pytest.fixture(scope="module")
def agent(sqlite_server: ServerProcess, admin: httpx.Client) -> tuple[str, dict[str, str]]:
    agent_id, key, _ = register_agent(admin, "validator", scopes=["a", "b"])
    return agent_id, key


def auth(sqlite_server: ServerProcess, agent: tuple[str, dict[str, str]]) -> dict[str, str]:
    return assertion_form(agent[1], agent[0], sqlite_server.url)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b'{"grant_type": "client_credentials"}', "application/json", id="json"),
        pytest.param(b"grant_type=client_credentials", "text/plain", id="text"),
        pytest.param(b"grant_type=client_credentials", None, id="none"),
    ],
)
@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_oauth_endpoints_require_a_form_body(
    http: httpx.Client, path: str, content: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = assert_error(http.post(path, content=content, headers=headers), 400, "invalid_request")
    assert FORM in body["error_description"]


@pytest.mark.parametrize(
    "content",
    [b"grant_type=client_credentials&&scope", b"grant_type=\xff\xfe", b"a=1&b"],
    ids=["empty-field", "not-utf8", "no-equals"],
)
def test_malformed_form_bodies(http: httpx.Client, content: bytes) -> None:
    response = http.post("/oauth2/token", content=content, headers=FORM_HEADER)
    assert_error(response, 400, "invalid_request")


def test_repeated_parameters_are_refused(
    http: httpx.Client, sqlite_server: ServerProcess, agent: tuple[str, dict[str, str]]
) -> None:
    pairs = [("grant_type", "client_credentials"), *auth(sqlite_server, agent).items(), ("scope", "a")]
    response = http.post("/oauth2/token", content=urlencode([*pairs, ("scope", "b")]), headers=FORM_HEADER)
    body = assert_error(response, 400, "invalid_request")
    assert "'scope' is repeated" in body["error_description"]
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        repeated = urlencode([("token", "x"), ("token", "y"), *auth(sqlite_server, agent).items()])
        body = assert_error(http.post(path, content=repeated, headers=FORM_HEADER), 400, "invalid_request")
        assert "'token' is repeated" in body["error_description"]


def test_resource_may_repeat(sqlite_server: ServerProcess, agent: tuple[str, dict[str, str]]) -> None:
    client = AgentClient(sqlite_server.url, agent[0], agent[1])
    try:
        token = client.fetch_token(resources=["https://one.example", "https://two.example"])
    finally:
        client.close()
    assert jwt_parts(token.access_token)[1]["aud"] == ["https://one.example", "https://two.example"]


def test_token_responses_are_not_cached(
    http: httpx.Client, sqlite_server: ServerProcess, agent: tuple[str, dict[str, str]]
) -> None:
    """RFC 6749 §5.1: ``Cache-Control: no-store`` and ``Pragma: no-cache``, on success and error."""
    ok = http.post("/oauth2/token", data={"grant_type": "client_credentials", **auth(sqlite_server, agent)})
    refused = http.post("/oauth2/token", data={"grant_type": "client_credentials"})
    for response in (ok, refused):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "Bearer"


def test_grant_type_errors(
    http: httpx.Client, sqlite_server: ServerProcess, agent: tuple[str, dict[str, str]]
) -> None:
    for grant in ("password", "authorization_code", "urn:example:unknown"):
        response = http.post("/oauth2/token", data={"grant_type": grant, **auth(sqlite_server, agent)})
        body = assert_error(response, 400, "unsupported_grant_type")
        assert f"'{grant}'" in body["error_description"]
    assert_error(http.post("/oauth2/token", data=auth(sqlite_server, agent)), 400, "invalid_request")
    beyond = {"grant_type": "client_credentials", "scope": "a admin", **auth(sqlite_server, agent)}
    assert_error(http.post("/oauth2/token", data=beyond), 400, "invalid_scope")
    anonymous = http.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert_error(anonymous, 401, "invalid_client")
    bad_details = {
        "grant_type": "client_credentials",
        "authorization_details": "[{not json",
        **auth(sqlite_server, agent),
    }
    assert_error(http.post("/oauth2/token", data=bad_details), 400, "invalid_authorization_details")
    assert_error(http.get("/oauth2/token"), 405, "method_not_allowed")


def test_oversized_bodies_get_413(http: httpx.Client, admin: httpx.Client) -> None:
    big = b"grant_type=client_credentials&scope=" + b"a" * (70 * 1024)
    assert_error(http.post("/oauth2/token", content=big, headers=FORM_HEADER), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b"grant_type=client_credentials&scope="
        for _ in range(80):
            yield b"a" * 1024

    streamed = http.post("/oauth2/token", content=chunks(), headers=FORM_HEADER)
    assert_error(streamed, 413, "payload_too_large")
    huge_agent = admin.post(
        "/admin/v1/agents", json={"name": "x", "owner": "a@b.c", "description": "d" * 70000}
    )
    assert_error(huge_agent, 413, "payload_too_large")


def test_every_admin_route_requires_the_admin_credential(http: httpx.Client) -> None:
    """Every route under /admin, as the app itself lists them (its OpenAPI document)."""
    paths = http.get("/openapi.json").json()["paths"]
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x1", path))
        for path, operations in paths.items()
        if path.startswith("/admin/")
        for method in operations
    ]
    assert len(routes) >= 15, routes
    for method, path in routes:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
        ):
            response = http.request(method, path, headers=headers, json={"name": "x", "owner": "a@b.c"})
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)


def test_admin_body_errors(admin: httpx.Client) -> None:
    malformed = admin.post(
        "/admin/v1/agents", content=b'{"name": "x", "owner":', headers={"Content-Type": "application/json"}
    )
    assert "json" in assert_error(malformed, 400, "invalid_request")["error_description"]
    cases = [
        {"name": "x"},  # missing owner
        {"name": "x", "owner": "a@b.c", "unknown_field": 1},
        {"name": "x", "owner": "a@b.c", "max_ttl": 5},
        {"name": "x", "owner": "not-an-email"},
        {"name": "x", "owner": "a@b.c", "jwks": [{"kty": "oct", "k": "c2VjcmV0"}]},
        {
            "name": "x",
            "owner": "a@b.c",
            "jwks": [{"kty": "EC", "crv": "P-256", "x": "1", "y": "2", "d": "3"}],
        },
        {"name": "x", "owner": "a@b.c", "scopes": ["bad scope"]},
        {"name": "x", "owner": "a@b.c", "resource_uris": ["no-scheme"]},
    ]
    for case in cases:
        assert_error(admin.post("/admin/v1/agents", json=case), 400, "invalid_request")
    assert_error(admin.get("/admin/v1/agents", params={"state": "sleeping"}), 400, "invalid_request")
    assert_error(admin.post("/admin/v1/tokens/revoke", json={}), 400, "invalid_request")


def test_unknown_things_are_404(admin: httpx.Client) -> None:
    assert_error(admin.get("/admin/v1/agents/agt_unknown"), 404, "not_found")
    for action in ("suspend", "resume", "quarantine", "release", "decommission"):
        assert_error(admin.post(f"/admin/v1/agents/agt_unknown/{action}"), 404, "not_found")
    assert_error(admin.delete("/admin/v1/agents/agt_unknown/keys/k1"), 404, "not_found")
    assert_error(admin.post("/admin/v1/keys/no-such-kid/retire"), 404, "not_found")
    assert_error(admin.get("/no/such/route"), 404, "not_found")


def test_lifecycle_conflicts_are_409(admin: httpx.Client) -> None:
    agent_id, _, _ = register_agent(admin, "lifecycle")
    assert_error(admin.post(f"/admin/v1/agents/{agent_id}/resume"), 409, "conflict")
    assert admin.post(f"/admin/v1/agents/{agent_id}/decommission").status_code == 200
    body = assert_error(admin.post(f"/admin/v1/agents/{agent_id}/resume"), 409, "conflict")
    assert agent_id in body["error_description"]
