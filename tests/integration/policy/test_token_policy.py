"""The token endpoint over HTTP under applied policies: denial, @max_ttl, @approval (CIBA), audit."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.policy.service import starter_bundle
from tessera.sdk.agent import AgentClient, ApprovalRequired, TokenError
from tests.integration.helpers import register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

BLOCKED = "https://blocked.example/api"
MARKER = '@id("issue-tokens-within-registered-scopes")\n'


def apply(server: ServerProcess, tokens_cedar: str) -> str:
    files = {**starter_bundle().files, "tokens.cedar": tokens_cedar}
    with server.admin() as admin:
        response = admin.post("/admin/v1/policies", json={"files": files})
    assert response.status_code == 201, response.text
    version: str = response.json()["version"]
    return version


def annotated(*annotations: str) -> str:
    return (
        starter_bundle()
        .files["tokens.cedar"]
        .replace(MARKER, MARKER + "".join(f"{a}\n" for a in annotations))
    )


def refusal(client: AgentClient, **params: Any) -> TokenError:
    with pytest.raises(TokenError) as refused:
        client.fetch_token(**params)
    return refused.value


def test_issuing_follows_the_active_policy(policy_server: ServerProcess) -> None:
    with policy_server.admin() as admin:
        agent_id, key, _ = register_agent(admin, "worker", scopes=["tickets:read"])
    client = AgentClient(policy_server.url, agent_id, key)
    try:
        assert client.fetch_token(scope="tickets:read").scope == "tickets:read"  # the starter bundle
        assert refusal(client, scope="tickets:write").error == "invalid_scope"  # not registered

        forbid = f'\n@id("no-blocked")\nforbid (principal, action, resource == Audience::"{BLOCKED}");\n'
        version = apply(policy_server, starter_bundle().files["tokens.cedar"] + forbid)
        denied = refusal(client, resources=[BLOCKED])
        assert (denied.status, denied.error) == (400, "invalid_scope")
        assert version in denied.description
        assert client.fetch_token(resources=["https://ok.example/api"]).expires_in == 300

        capped = apply(policy_server, annotated('@max_ttl("60")'))
        token = client.fetch_token()
        assert token.expires_in == 60

        # A person must approve: the token endpoint answers per CIBA (docs/approvals.md).
        apply(policy_server, annotated('@approval("required")'))
        with pytest.raises(ApprovalRequired) as needs_approval:
            client.fetch_token()
        assert needs_approval.value.pending.status == "approval_pending"
        assert needs_approval.value.pending.auth_req_id
    finally:
        client.close()

    with policy_server.admin() as admin:
        found = admin.get("/admin/v1/audit/records", params={"type": "token.issued"}).json()["records"]
    latest = found[0]  # newest first
    assert latest["decision"]["policy_version"] == capped
    assert latest["decision"]["policies"] == ["issue-tokens-within-registered-scopes"]
    assert latest["data"]["expires_in"] == 60
