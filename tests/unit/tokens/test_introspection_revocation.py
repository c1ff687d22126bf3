"""Introspection (RFC 7662) and revocation (RFC 7009): who may ask, and what 'inactive' covers."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tessera.clock import ManualClock
from tessera.errors import ServiceUnavailable, UnauthorizedClient
from tessera.runtime import Runtime
from tessera.storage.database import reading
from tessera.storage.tables import issued_tokens
from tessera.tokens.introspection import Caller
from tessera.tokens.jose import JwsError
from tessera.tokens.revocation import revoke_tokens
from tests.unit.helpers import Client, private_key, register, request_token

ADMIN = Caller(admin=True)
INACTIVE = {"active": False}


def task(task_id: str) -> str:
    return json.dumps([{"type": "agent_task", "task_id": task_id, "purpose": "p"}])


def introspect(runtime: Runtime, token: str, caller: Caller = ADMIN) -> dict[str, object]:
    return runtime.introspector.introspect(token, caller)[0]


def test_an_active_token_is_described(runtime: Runtime, client: Client) -> None:
    key = private_key()
    issued = request_token(runtime, client, dpop_key=key, authorization_details=task("T-1"))
    body = introspect(runtime, issued.access_token)
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client.id
    assert body["iss"] == runtime.issuer
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": key.thumbprint()}
    assert body["scope"] == "tickets:read tickets:write"
    assert body["authorization_details"][0]["task_id"] == "T-1"  # type: ignore[index]


def test_who_may_introspect(runtime: Runtime, client: Client) -> None:
    api = "https://api.example/tickets"
    resource_server = register(runtime, resource_uris=(api,))
    stranger = register(runtime)
    for_api = request_token(runtime, client, resource=api).access_token
    for_issuer = request_token(runtime, client).access_token

    assert introspect(runtime, for_api, ADMIN)["active"] is True
    assert introspect(runtime, for_api, Caller(agent=client.agent))["active"] is True
    assert introspect(runtime, for_api, Caller(agent=resource_server.agent))["active"] is True
    assert introspect(runtime, for_issuer, Caller(agent=resource_server.agent)) == INACTIVE
    assert introspect(runtime, for_api, Caller(agent=stranger.agent)) == INACTIVE
    assert introspect(runtime, for_api, Caller()) == INACTIVE


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "e30.e30.", "x" * 100_000])
def test_garbage_is_exactly_inactive(runtime: Runtime, token: str) -> None:
    assert introspect(runtime, token) == INACTIVE


def test_an_expired_token_is_inactive(runtime: Runtime, client: Client, clock: ManualClock) -> None:
    token = request_token(runtime, client, expires_in="60").access_token
    clock.advance(60 + runtime.settings.clock_leeway)
    assert introspect(runtime, token)["active"] is True
    clock.advance(1)
    assert introspect(runtime, token) == INACTIVE


def test_the_client_revokes_its_own_token(runtime: Runtime, client: Client) -> None:
    token = request_token(runtime, client).access_token
    assert runtime.revoker.revoke_token(token, Caller(agent=client.agent)) is True
    assert introspect(runtime, token) == INACTIVE
    with pytest.raises(JwsError, match="revoked"):
        runtime.validator.verify(token)
    # Revoking again is a no-op, still a success on the wire.
    assert runtime.revoker.revoke_token(token, Caller(agent=client.agent)) is False


def test_another_client_cannot_revoke(runtime: Runtime, client: Client) -> None:
    token = request_token(runtime, client).access_token
    with pytest.raises(UnauthorizedClient):
        runtime.revoker.revoke_token(token, Caller(agent=register(runtime).agent))
    with pytest.raises(UnauthorizedClient):
        runtime.revoker.revoke_token(token, Caller())
    assert introspect(runtime, token)["active"] is True


def test_the_admin_may_revoke(runtime: Runtime, client: Client) -> None:
    token = request_token(runtime, client).access_token
    assert runtime.revoker.revoke_token(token, ADMIN) is True
    assert introspect(runtime, token) == INACTIVE


def test_revoking_an_invalid_token_is_a_no_op(runtime: Runtime) -> None:
    assert runtime.revoker.revoke_token("not-a-token", ADMIN) is False


def test_revocation_is_durable(runtime: Runtime, client: Client) -> None:
    issued = request_token(runtime, client)
    runtime.revoker.revoke_token(issued.access_token, ADMIN)
    with reading(runtime.engine) as conn:
        row = conn.execute(select(issued_tokens).where(issued_tokens.c.jti == issued.jti)).one()
    assert row.revoked_at == runtime.clock.now()
    assert row.revoked_reason


def test_revoke_by_task_revokes_exactly_that_tasks_tokens(runtime: Runtime, client: Client) -> None:
    other = register(runtime)
    t1 = [request_token(runtime, client, authorization_details=task("T-1")).access_token for _ in range(2)]
    t1_other_agent = request_token(runtime, other, authorization_details=task("T-1")).access_token
    t2 = request_token(runtime, client, authorization_details=task("T-2")).access_token
    untasked = request_token(runtime, client).access_token

    revoked = runtime.revoker.revoke(task_id="T-1", reason="task cancelled")
    assert len(revoked) == 3
    for token in [*t1, t1_other_agent]:
        assert introspect(runtime, token) == INACTIVE
    for token in (t2, untasked):
        assert introspect(runtime, token)["active"] is True
    assert runtime.revoker.revoke(task_id="T-1", reason="again") == {}
    assert runtime.revoker.revoke(task_id="T-1\n", reason="no such task") == {}


def test_revoke_by_agent(runtime: Runtime, client: Client) -> None:
    other = register(runtime)
    mine = [request_token(runtime, client).access_token for _ in range(3)]
    theirs = request_token(runtime, other).access_token
    assert len(runtime.revoker.revoke(agent_id=client.id, reason="compromised")) == 3
    assert all(introspect(runtime, t) == INACTIVE for t in mine)
    assert introspect(runtime, theirs)["active"] is True
    # The agent itself stays active: new tokens work.
    assert introspect(runtime, request_token(runtime, client).access_token)["active"] is True


def test_revoke_tokens_needs_exactly_one_selector(runtime: Runtime) -> None:
    with reading(runtime.engine) as conn:
        with pytest.raises(ValueError, match="exactly one"):
            revoke_tokens(conn, now=0, reason="r")
        with pytest.raises(ValueError, match="exactly one"):
            revoke_tokens(conn, now=0, reason="r", jti="a", task_id="b")


def test_a_storage_failure_while_revoking_is_an_error_not_a_200(
    runtime: Runtime, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = request_token(runtime, client).access_token

    def broken(*_args: object, **_kwargs: object) -> dict[str, float]:
        raise OperationalError("UPDATE issued_tokens", {}, Exception("disk I/O error"))

    monkeypatch.setattr("tessera.tokens.introspection.revoke_tokens", broken)
    with pytest.raises(ServiceUnavailable, match="still live") as failed:
        runtime.revoker.revoke_token(token, ADMIN)
    assert failed.value.status == 503
    with pytest.raises(ServiceUnavailable):
        runtime.revoker.revoke(task_id="T-1", reason="r")
    # Nothing pretends to be revoked.
    assert introspect(runtime, token)["active"] is True
