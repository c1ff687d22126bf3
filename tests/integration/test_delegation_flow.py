"""Delegation over HTTP against a real server (SQLite and PostgreSQL): agent → helper → sub-helper,
the chain in introspection, escalations refused on the wire, and one RFC 7009 revocation of the
root taking the whole chain down. Also a task closed through the admin API."""

from __future__ import annotations

import httpx
import pytest

from tessera.sdk.agent import AgentClient, TokenError
from tests.integration.helpers import assert_error, assertion_form, introspect, jwt_parts, register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

API = "https://api.example/tickets"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def test_a_chain_is_built_narrowed_and_revoked_as_one(server: ServerProcess) -> None:
    scopes = ["tickets:read", "tickets:write"]
    with server.admin() as admin:
        root_id, root_key, _ = register_agent(admin, "planner", scopes=scopes)
        helper_id, helper_key, _ = register_agent(admin, "helper", scopes=scopes)
        sub_id, sub_key, _ = register_agent(admin, "sub-helper", scopes=["tickets:read"])
    planner = AgentClient(server.url, root_id, root_key, dpop=False)
    helper = AgentClient(server.url, helper_id, helper_key, dpop=False)
    sub = AgentClient(server.url, sub_id, sub_key)
    try:
        root = planner.fetch_token(scope="tickets:read tickets:write", resources=[API])
        first = helper.exchange_token(root.access_token, scope="tickets:read tickets:write")
        second = sub.exchange_token(first.access_token, scope="tickets:read")
        with pytest.raises(TokenError) as wider:
            sub.exchange_token(first.access_token, scope="tickets:write")
        assert wider.value.error == "invalid_scope"
        with pytest.raises(TokenError) as elsewhere:
            sub.exchange_token(first.access_token, audiences=["https://evil.example"])
        assert elsewhere.value.error == "invalid_target"
    finally:
        planner.close()
        helper.close()
        sub.close()
    _, claims = jwt_parts(second.access_token)
    assert claims["sub"] == root_id
    assert claims["act"] == {"sub": sub_id, "act": {"sub": helper_id}}
    assert second.token_type == "DPoP"

    body = introspect(server.url, second.access_token, admin=server.admin_token)
    assert body["active"] is True
    assert body["delegation"] == {"depth": 2, "actors": [helper_id, sub_id], "subject": root_id}

    # Malformed exchanges answer with the RFC 8693 / RFC 6749 code and a one-line reason.
    form = {"grant_type": EXCHANGE, **assertion_form(sub_key, sub_id, server.url)}
    assert_error(httpx.post(f"{server.url}/oauth2/token", data=form, timeout=10), 400, "invalid_request")
    form = {
        "grant_type": EXCHANGE,
        "subject_token": first.access_token,
        "subject_token_type": ACCESS,
        "actor_token": first.access_token,
        **assertion_form(sub_key, sub_id, server.url),
    }
    answer = assert_error(
        httpx.post(f"{server.url}/oauth2/token", data=form, timeout=10), 400, "invalid_request"
    )
    assert answer["error_description"] == "actor_token given without actor_token_type"

    # The planner revokes its own token (RFC 7009): everything derived from it dies with it.
    response = httpx.post(
        f"{server.url}/oauth2/revoke",
        data={"token": root.access_token, **assertion_form(root_key, root_id, server.url)},
        timeout=10,
    )
    assert response.status_code == 200
    for token in (root.access_token, first.access_token, second.access_token):
        assert introspect(server.url, token, admin=server.admin_token) == {"active": False}
    with server.admin() as admin:
        records = admin.get("/admin/v1/audit/records", params={"type": "token.revoked"}).json()["records"]
    assert len(records) == 3


def test_closing_a_task_over_the_admin_api_revokes_its_tokens(server: ServerProcess) -> None:
    with server.admin() as admin:
        agent_id, key, _ = register_agent(admin, "worker", scopes=["tickets:read"])
        opened = admin.post(
            "/admin/v1/tasks",
            json={
                "agent_id": agent_id,
                "purpose": "triage",
                "expires_in": 600,
                "resources": [API],
                "budget": 3,
            },
        )
        assert opened.status_code == 201, opened.text
        task = opened.json()
        assert (task["state"], task["budget_remaining"]) == ("open", 3)
        refused = admin.post("/admin/v1/tasks", json={"agent_id": agent_id, "purpose": "x"})
        assert_error(refused, 400, "invalid_request")
    client = AgentClient(server.url, agent_id, key)
    try:
        token = client.fetch_token(task={"task_id": task["id"], "purpose": "triage"})
    finally:
        client.close()
    assert token.authorization_details[0]["resources"] == [API]
    with server.admin() as admin:
        closed = admin.post(f"/admin/v1/tasks/{task['id']}/close", json={"reason": "done"}).json()
    assert (closed["state"], closed["revoked_tokens"]) == ("closed", 1)
    assert introspect(server.url, token.access_token, admin=server.admin_token) == {"active": False}
