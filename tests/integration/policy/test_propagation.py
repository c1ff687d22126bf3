"""Policy and resource changes made through one server are decided by another sharing its database.

Each check polls server B until the change applied through server A shows in its
decisions, within a generous bound: a propagation check, not a timing assertion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tessera.policy.service import starter_bundle
from tests.integration.helpers import eventually, register_agent
from tests.integration.policy.conftest import CORPORATE_IP
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

QUARANTINE_FRAUD = (
    '\n@id("pause-fraud-detection")\n'
    "forbid (principal is Agent, action, resource)\n"
    'when { principal.hasTag("role") && principal.getTag("role") == "fraud-detection" };\n'
)


def decide(server: ServerProcess, agent_id: str, resource: str) -> dict[str, Any]:
    with server.admin() as admin:
        response = admin.post(
            "/admin/v1/decisions",
            json={
                "principal": {"type": "Agent", "id": agent_id},
                "action": "read",
                "resource": {"type": "Resource", "id": resource},
                "context": {"client_ip": CORPORATE_IP},
            },
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_applied_policy_and_a_rollback_reach_the_other_server(
    start_server: Callable[[], ServerProcess],
) -> None:
    a, b = start_server(), start_server()
    starter = starter_bundle().version
    with a.admin() as admin:
        agent, _, _ = register_agent(
            admin, "fraud", attributes={"role": "fraud-detection"}, segment="payments"
        )

    def allowed_on_b() -> dict[str, Any] | None:
        decision = decide(b, agent, "account-1001")
        return decision if decision["decision"] else None

    first = eventually(allowed_on_b, "the new agent allowed on b")
    assert first["context"]["policy_version"] == starter

    files = dict(starter_bundle().files)
    files["guardrails.cedar"] += QUARANTINE_FRAUD
    with a.admin() as admin:
        applied = admin.post("/admin/v1/policies", json={"files": files, "note": "pause fraud detection"})
        assert applied.status_code == 201, applied.text
        version = applied.json()["version"]

    def on_b_with(version: str) -> dict[str, Any] | None:
        decision = decide(b, agent, "account-1001")
        return decision if decision["context"]["policy_version"] == version else None

    paused = eventually(lambda: on_b_with(version), f"policy {version} in effect on b")
    assert paused["decision"] is False
    assert paused["context"]["determining_policies"] == ["pause-fraud-detection"]
    with b.admin() as admin:
        assert admin.get("/admin/v1/policies/active").json()["version"] == version

    with a.admin() as admin:
        rolled = admin.post("/admin/v1/policies/rollback", json={"version": starter})
        assert rolled.status_code == 200, rolled.text
    resumed = eventually(lambda: on_b_with(starter), "the rollback in effect on b")
    assert resumed["decision"] is True


def test_resources_registered_on_one_server_are_decided_on_the_other(
    start_server: Callable[[], ServerProcess],
) -> None:
    a, b = start_server(), start_server()
    with a.admin() as admin:
        agent, _, _ = register_agent(
            admin, "fraud", attributes={"role": "fraud-detection"}, segment="payments"
        )
        created = admin.post(
            "/admin/v1/resources",
            json={
                "id": "account-3001",
                "attributes": {"segment": "payments", "kind": "account", "under_investigation": True},
            },
        )
        assert created.status_code == 201, created.text
    eventually(lambda: decide(b, agent, "account-3001")["decision"], "the new account decided on b")

    with a.admin() as admin:
        assert admin.delete("/admin/v1/resources/Resource/account-3001").status_code == 200
    eventually(lambda: not decide(b, agent, "account-3001")["decision"], "the removal seen on b")
    with httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {b.admin_token}"}) as admin:
        assert admin.get("/admin/v1/resources").json()["resources"] == []
