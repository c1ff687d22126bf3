"""``tessera resource …``: registering the resources the PDP decides on."""

from __future__ import annotations

from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


def test_add_list_update_remove(cli: Cli, server: ServerProcess) -> None:
    out = cli.ok(
        "resource", "add", "account-1001",
        "--attr", "kind=account", "--attr", "segment=payments",
        "--attr-json", "under_investigation=true", "--attr-json", 'shared_with_segments=["fraud"]',
        "--parent", "ResourceGroup::payments",
    )  # fmt: skip
    assert out == "Resource::account-1001: added\n"
    group = cli.json("resource", "add", "ResourceGroup::payments", "--attr", "segment=payments")
    assert (group["type"], group["id"], group["parents"]) == ("ResourceGroup", "payments", [])
    quoted = cli.json("resource", "add", 'Resource::"https://api.example/docs::1"')
    assert (quoted["type"], quoted["id"]) == ("Resource", "https://api.example/docs::1")

    listed = cli.json("resource", "list")["resources"]
    account = next(r for r in listed if r["id"] == "account-1001")
    assert account["attributes"] == {
        "kind": "account",
        "segment": "payments",
        "under_investigation": True,
        "shared_with_segments": ["fraud"],
    }
    assert account["parents"] == [{"type": "ResourceGroup", "id": "payments"}]
    table = cli.ok("resource", "list")
    assert "3 resource(s)" in table
    assert "Resource::account-1001" in table
    assert 'shared_with_segments=["fraud"]' in table
    assert "ResourceGroup::payments" in table
    groups = cli.json("resource", "list", "--type", "ResourceGroup")["resources"]
    assert [r["id"] for r in groups] == ["payments"]

    # Adding again replaces attributes and parents.
    assert cli.ok("resource", "add", "Resource::account-1001", "--attr", "kind=account") == (
        "Resource::account-1001: updated\n"
    )
    replaced = cli.json("resource", "list", "--type", "Resource")["resources"]
    assert next(r for r in replaced if r["id"] == "account-1001")["attributes"] == {"kind": "account"}

    assert cli.ok("resource", "remove", "account-1001") == "Resource::account-1001: removed\n"
    assert cli.json("resource", "remove", "ResourceGroup::payments") == {
        "type": "ResourceGroup",
        "id": "payments",
        "removed": True,
    }
    assert [r["id"] for r in cli.json("resource", "list")["resources"]] == ["https://api.example/docs::1"]
    with server.admin() as admin:
        records = admin.get("/admin/v1/audit/records", params={"type": "resource.*"}).json()["records"]
    assert [r["type"] for r in records[:3]] == ["resource.removed", "resource.removed", "resource.updated"]


def test_resource_errors(cli: Cli) -> None:
    assert (
        cli.fails("resource", "remove", "Resource::nope") == 'error: not_found: no resource Resource::"nope"'
    )
    assert cli.fails("resource", "add", "x", "--attr-json", "n=1.5").startswith(
        "error: invalid_request: attributes of Resource::"
    )
    assert (
        cli.fails("resource", "add", "x", "--attr-json", "n={")
        == "error: --attr-json 'n': the value is not json"
    )
    assert cli.fails("resource", "add", "x", "--attr-json", "novalue") == (
        "error: malformed --attr-json 'novalue': expected KEY=JSON"
    )
    assert cli.fails("resource", "add", "x", "--attr", "k=v", "--attr-json", "k=1") == (
        "error: attribute 'k' is given twice"
    )
    assert cli.fails("resource", "add", "x", "--parent", "payments") == (
        "error: malformed --parent 'payments': expected Type::id"
    )
    assert cli.fails("resource", "add", "Bad Type::x").startswith(
        "error: invalid_request: invalid entity type"
    )
    assert cli.json("resource", "list") == {"resources": []}
