"""The policy admin API over HTTP: validate, apply, versions, diff, rollback, resources, decisions."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tessera.policy.service import starter_bundle
from tests.integration.helpers import assert_error, register_agent
from tests.integration.policy.conftest import CORPORATE_IP
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

NO_LISTING = '\n@id("no-listing")\nforbid (principal, action == Action::"list", resource);\n'


def starter_with(extra: str = "", **files: str) -> dict[str, str]:
    bundle = dict(starter_bundle().files)
    bundle["guardrails.cedar"] += extra
    bundle.update(files)
    return bundle


def explain(admin: httpx.Client, agent_id: str, action: str, resource: str, **context: Any) -> dict[str, Any]:
    response = admin.post(
        "/admin/v1/decisions",
        json={
            "principal": {"type": "Agent", "id": agent_id},
            "action": action,
            "resource": {"type": "Resource", "id": resource},
            "context": context,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def records(admin: httpx.Client, type_: str) -> list[dict[str, Any]]:
    response = admin.get("/admin/v1/audit/records", params={"type": type_, "order": "asc"})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


def test_validate_apply_list_show_diff_and_rollback(policy_server: ServerProcess) -> None:
    starter = starter_bundle().version
    files = starter_with(NO_LISTING)
    with policy_server.admin() as admin:
        validated = admin.post("/admin/v1/policies/validate", json={"files": files})
        assert validated.status_code == 200, validated.text
        body = validated.json()
        assert "no-listing" in body["policies"]
        assert body["tests"]["failed"] == 0
        assert body["tests"]["passed"] >= 13
        assert admin.get("/admin/v1/policies/active").json()["version"] == starter  # not applied

        applied = admin.post("/admin/v1/policies", json={"files": files, "note": "no deletes"})
        assert applied.status_code == 201, applied.text
        version = applied.json()["version"]
        assert version == body["version"]
        assert applied.json()["active"] is True
        again = admin.post("/admin/v1/policies", json={"files": files})
        assert again.json()["version"] == version

        listed = admin.get("/admin/v1/policies").json()["versions"]
        assert {v["version"]: v["active"] for v in listed} == {version: True, starter: False}
        shown = admin.get(f"/admin/v1/policies/{version}").json()
        assert (shown["version"], shown["active"], shown["files"]) == (version, True, files)
        assert admin.get("/admin/v1/policies/active").json()["version"] == version

        diff = admin.get("/admin/v1/policies/diff", params={"a": starter, "b": version})
        assert diff.status_code == 200
        assert diff.headers["content-type"].startswith("text/plain")
        assert '+@id("no-listing")' in diff.text
        assert f"+++ {version}/guardrails.cedar" in diff.text

        rolled = admin.post("/admin/v1/policies/rollback", json={"version": starter[:6]})
        assert rolled.status_code == 200, rolled.text
        assert rolled.json() == {"version": starter, "active": True}
        assert admin.get("/admin/v1/policies/active").json()["version"] == starter

        assert_error(
            admin.post("/admin/v1/policies/rollback", json={"version": "ffffffff"}), 404, "not_found"
        )
        assert_error(admin.get(f"/admin/v1/policies/{'0' * 16}"), 404, "not_found")
        assert_error(admin.post("/admin/v1/policies/rollback", json={"version": "abc"}), 400)

        types = [r["type"] for r in records(admin, "policy.applied") + records(admin, "policy.rolled_back")]
        assert types.count("policy.applied") == 3  # the starter, then this bundle twice
        assert types.count("policy.rolled_back") == 1
        reads = [r["data"]["route"] for r in records(admin, "admin.read")]
        assert "POST /admin/v1/policies/validate" in reads


def test_invalid_bundles_are_refused_with_their_problems(policy_server: ServerProcess) -> None:
    starter = starter_bundle().version
    broken = starter_with('\n@id("broken")\npermit (principal, action, resource) when { resource.nope };\n')
    line = starter_bundle().files["guardrails.cedar"].count("\n") + 2  # after a blank line
    with policy_server.admin() as admin:
        for route in ("/admin/v1/policies/validate", "/admin/v1/policies"):
            body = assert_error(admin.post(route, json={"files": broken}), 400, "invalid_request")
            assert body["problems"]
            assert {(p["file"], p["line"]) for p in body["problems"]} == {("guardrails.cedar", line)}
            assert body["error_description"].startswith(f"guardrails.cedar:{line}: for policy `broken`")
        bad_yaml = starter_with(**{"tests/starter.yaml": "cases: [\n"})
        body = assert_error(admin.post("/admin/v1/policies/validate", json={"files": bad_yaml}), 400)
        assert body["error_description"].startswith("tests/starter.yaml: not valid yaml")
        assert_error(admin.post("/admin/v1/policies", json={"files": {"x.txt": "hi"}}), 400)
        assert_error(
            admin.post(
                "/admin/v1/policies", json={"files": {"a.cedar": "permit(principal, action, resource);"}}
            ),
            400,
        )
        assert admin.get("/admin/v1/policies/active").json()["version"] == starter
        assert len(admin.get("/admin/v1/policies").json()["versions"]) == 1


def test_resources_are_registered_listed_and_removed(policy_server: ServerProcess) -> None:
    with policy_server.admin() as admin:
        group = admin.post(
            "/admin/v1/resources",
            json={"type": "ResourceGroup", "id": "payments", "attributes": {"segment": "payments"}},
        )
        assert group.status_code == 201, group.text
        created = admin.post(
            "/admin/v1/resources",
            json={
                "id": "account-2001",
                "attributes": {"segment": "payments", "kind": "account", "under_investigation": True},
                "parents": [{"type": "ResourceGroup", "id": "payments"}],
            },
        )
        assert created.status_code == 201, created.text
        view = created.json()
        assert (view["type"], view["id"]) == ("Resource", "account-2001")
        assert view["parents"] == [{"type": "ResourceGroup", "id": "payments"}]
        assert view["created_at"] == view["updated_at"]

        listed = admin.get("/admin/v1/resources").json()["resources"]
        assert [(r["type"], r["id"]) for r in listed] == [
            ("Resource", "account-2001"),
            ("ResourceGroup", "payments"),
        ]
        only_groups = admin.get("/admin/v1/resources", params={"type": "ResourceGroup"}).json()["resources"]
        assert [r["id"] for r in only_groups] == ["payments"]

        assert_error(admin.post("/admin/v1/resources", json={"id": "x", "attributes": {"w": 1.5}}), 400)
        assert_error(admin.post("/admin/v1/resources", json={"type": "no good", "id": "x"}), 400)
        removed = admin.delete("/admin/v1/resources/Resource/account-2001")
        assert removed.status_code == 200, removed.text
        assert removed.json() == {"type": "Resource", "id": "account-2001", "removed": True}
        assert_error(admin.delete("/admin/v1/resources/Resource/account-2001"), 404, "not_found")
        assert [r["id"] for r in admin.get("/admin/v1/resources").json()["resources"]] == ["payments"]

        uri = "https://records.example/9?v=1"  # an id with '/' in it is still removable
        assert admin.post("/admin/v1/resources", json={"id": uri}).status_code == 201
        removed = admin.delete(f"/admin/v1/resources/Resource/{quote(uri, safe='')}")
        assert removed.status_code == 200, removed.text
        assert removed.json()["id"] == uri
        assert len(records(admin, "resource.added")) == 3
        assert len(records(admin, "resource.removed")) == 2


def test_decisions_are_explained_and_recorded(policy_server: ServerProcess) -> None:
    starter = starter_bundle().version
    with policy_server.admin() as admin:
        fraud, _, _ = register_agent(
            admin, "fraud", attributes={"role": "fraud-detection"}, segment="payments"
        )
        research, _, _ = register_agent(
            admin, "research", attributes={"role": "research"}, segment="research"
        )
        admin.post(
            "/admin/v1/resources",
            json={
                "id": "account-2001",
                "attributes": {"segment": "payments", "kind": "account", "under_investigation": True},
            },
        )

        allowed = explain(admin, fraud, "read", "account-2001", client_ip=CORPORATE_IP, network_zone="x")
        assert allowed["decision"] is True
        why = allowed["context"]
        assert why["determining_policies"] == ["fraud-detection-reads-accounts-under-investigation"]
        assert (why["policy_version"], why["errors"], why["obligations"]) == (starter, [], {})
        assert why["decision_id"].startswith("dec_")
        evaluated = allowed["evaluated_context"]
        assert (evaluated["network_zone"], evaluated["agent_state"], evaluated["risk"]) == (
            "corporate",
            "active",
            0,
        )
        assert set(evaluated["time"]) == {"hour", "weekday"}

        local = explain(admin, fraud, "read", "account-2001")  # from 127.0.0.1: the local zone
        assert local["decision"] is False
        assert local["evaluated_context"]["network_zone"] == "local"
        assert local["context"]["determining_policies"] == []

        crossing = explain(admin, research, "read", "account-2001", client_ip=CORPORATE_IP)
        assert crossing["decision"] is False
        assert crossing["context"]["determining_policies"] == ["forbid-cross-segment"]

        researched = explain(
            admin, research, "read", "record-7", task_resources=["https://records.example/7"]
        )
        assert researched["decision"] is True
        assert researched["context"]["obligations"] == {"max_ttl": "300"}

        decided = records(admin, "decision")
        ids = [allowed, local, crossing, researched]
        assert [r["decision"]["decision_id"] for r in decided] == [d["context"]["decision_id"] for d in ids]
        assert [r["decision"]["outcome"] for r in decided] == ["permit", "deny", "deny", "permit"]
        assert decided[0]["subject"] == fraud
        assert decided[0]["decision"]["policy_version"] == starter
        assert decided[0]["data"]["network_zone"] == "corporate"

        assert_error(
            admin.post(
                "/admin/v1/decisions",
                json={
                    "principal": {"type": "Agent"},
                    "action": "read",
                    "resource": {"type": "Resource", "id": "r"},
                },
            ),
            400,
        )


def test_policy_routes_need_the_admin_credential(policy_server: ServerProcess) -> None:
    routes = [
        ("GET", "/admin/v1/policies"),
        ("POST", "/admin/v1/policies"),
        ("POST", "/admin/v1/policies/validate"),
        ("GET", "/admin/v1/policies/active"),
        ("GET", "/admin/v1/policies/diff?a=aaaa&b=bbbb"),
        ("POST", "/admin/v1/policies/rollback"),
        ("POST", "/admin/v1/decisions"),
        ("GET", "/admin/v1/resources"),
        ("POST", "/admin/v1/resources"),
        ("DELETE", "/admin/v1/resources/Resource/x"),
    ]
    with httpx.Client(base_url=policy_server.url, timeout=10) as anonymous:
        for method, path in routes:
            response = anonymous.request(method, path, headers={"Authorization": "Bearer wrong"}, json={})
            assert_error(response, 401, "unauthorized")
