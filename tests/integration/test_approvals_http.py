"""Just-in-time access over HTTP, through a real server process: people log in with TOTP,
roles are enforced, and an agent's payment goes through the CIBA flow to an approved token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest

from tessera.sdk.agent import AgentClient, TokenError
from tests.integration.helpers import assert_error, jwt_parts, register_agent
from tests.support import ServerProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "payments-approvals"
PASSWORD = "correct horse battery"


@pytest.fixture
def payments_server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        home=tmp_path / "home",
        database_url=database_url,
        env={"TESSERA_POLICY_BUNDLE": str(EXAMPLE), "TESSERA_CIBA_POLL_INTERVAL": "1"},
    ).start()
    yield proc
    proc.stop()


def create_person(admin: httpx.Client, username: str, role: str, *groups: str) -> str | None:
    response = admin.post(
        "/admin/v1/users",
        json={"username": username, "role": role, "password": PASSWORD, "groups": list(groups)},
    )
    assert response.status_code == 201, response.text
    uri = response.json()["otpauth_uri"]
    return pyotp.parse_uri(uri).secret if uri else None


def login(url: str, username: str, code: str | None) -> httpx.Response:
    body = {"username": username, "password": PASSWORD}
    if code:
        body["totp"] = code
    return httpx.post(f"{url}/auth/v1/login", json=body)


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    opened: list[httpx.Client] = []
    yield opened
    for client in opened:
        client.close()


def test_people_roles_and_a_payment_approved_through_ciba(
    payments_server: ServerProcess, clients: list[httpx.Client]
) -> None:
    url = payments_server.url

    def session(token: str) -> httpx.Client:
        clients.append(httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}))
        return clients[-1]

    admin = session(payments_server.admin_token)
    alice_secret = create_person(admin, "alice@example.com", "approver", "payments-approvers")
    create_person(admin, "audrey@example.com", "auditor")

    assert alice_secret is not None
    code = pyotp.TOTP(alice_secret).now()
    first = login(url, "alice@example.com", code)
    assert first.status_code == 200, first.text
    alice = session(first.json()["token"])
    # The same TOTP code cannot log in twice (RFC 6238 §5.2: one use per step).
    assert_error(login(url, "alice@example.com", code), 401, "unauthorized")
    assert_error(
        httpx.post(f"{url}/auth/v1/login", json={"username": "alice@example.com", "password": PASSWORD}), 401
    )
    audrey_token = login(url, "audrey@example.com", None).json()["token"]
    audrey = session(audrey_token)

    # Roles: an approver cannot use admin routes, an auditor reads the audit log but cannot approve.
    assert_error(alice.get("/admin/v1/agents"), 403, "forbidden")
    assert audrey.get("/admin/v1/audit/records").status_code == 200
    assert_error(audrey.get("/admin/v1/users"), 403, "forbidden")

    agent_id, private, _ = register_agent(
        admin,
        "pay-bot",
        owner="olivia@example.com",
        scopes=["access:request"],
        attributes={"role": "payments"},
        segment="payments",
    )
    http = httpx.Client(timeout=10.0)
    clients.append(http)
    client = AgentClient(url, agent_id, private, http=http)
    token = client.fetch_token(scope="access:request")
    pending = client.request_access(
        token,
        action="pay",
        resource={"type": "Resource", "id": "acct-ops"},
        context={"amount": 50_000, "payee": "globex"},
        purpose="pay invoice 7",
        task_id="INV-7",
    )
    assert pending.status == "approval_pending"
    with pytest.raises(TokenError) as waiting:
        client.poll_access(pending.auth_req_id)
    assert waiting.value.error == "authorization_pending"
    with pytest.raises(TokenError) as too_fast:
        client.poll_access(pending.auth_req_id)
    assert too_fast.value.error == "slow_down"

    shown = alice.get(f"/admin/v1/approvals/{pending.request_id}").json()
    assert shown["agent"]["owner"] == "olivia@example.com"
    assert shown["asked"]["context"] == {"amount": 50_000, "payee": "globex"}
    assert shown["current_risk"] == 0
    assert any(a["type"] == "access.requested" for a in shown["recent_activity"])
    assert_error(
        audrey.post(
            f"/admin/v1/approvals/{pending.request_id}/approve", json={"asked_hash": shown["asked_hash"]}
        ),
        403,
    )
    assert_error(
        alice.post(f"/admin/v1/approvals/{pending.request_id}/approve", json={"asked_hash": "0" * 64}), 409
    )
    # The bootstrap admin credential is no person: it cannot approve.
    assert_error(
        admin.post(
            f"/admin/v1/approvals/{pending.request_id}/approve", json={"asked_hash": shown["asked_hash"]}
        ),
        401,
    )
    approved = alice.post(
        f"/admin/v1/approvals/{pending.request_id}/approve",
        json={"asked_hash": shown["asked_hash"], "reason": "invoice checked"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    elevated = client.wait_for_access(pending)
    _, claims = jwt_parts(elevated.access_token)
    detail = next(d for d in claims["authorization_details"] if d["type"] == "tessera_approval")
    assert detail["asked_hash"] == shown["asked_hash"]
    with pytest.raises(TokenError) as replay:
        client.poll_access(pending.auth_req_id)
    assert replay.value.error == "invalid_grant"

    def evaluate(amount: int) -> bool:
        body = {
            "subject": {"type": "Agent", "id": agent_id},
            "action": {"name": "pay"},
            "resource": {"type": "Resource", "id": "acct-ops"},
            "context": {"amount": amount, "payee": "globex", "access_token": elevated.access_token},
        }
        answer = admin.post("/access/v1/evaluation", json=body)
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["decision"])

    assert evaluate(50_000) is True
    assert evaluate(60_000) is False

    # The audit log names the person who approved.
    deadline = time.monotonic() + 10
    records: list[dict[str, object]] = []
    while time.monotonic() < deadline and not records:
        records = audrey.get("/admin/v1/audit/records", params={"type": "approval.approved"}).json()[
            "records"
        ]
    assert records[0]["actor"] == {"type": "person", "id": "alice@example.com"}
