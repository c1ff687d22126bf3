"""Legacy client_secret authentication (RFC 6749 §2.3.1): off by default, argon2-hashed when on."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import select

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import Conflict, InvalidClient
from tessera.identity.agents import Transition
from tessera.runtime import Runtime
from tessera.storage.database import reading
from tessera.storage.tables import agents
from tessera.tokens.issuer import IssuedToken
from tests.unit.helpers import Client, register, token_request


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def with_basic(runtime: Runtime, client_id: str, secret: str) -> IssuedToken:
    request = token_request(
        runtime, [("grant_type", "client_credentials")], authorization=basic(client_id, secret)
    )
    return runtime.token_endpoint.handle(request)


def with_post(runtime: Runtime, client_id: str, secret: str) -> IssuedToken:
    pairs = [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)]
    return runtime.token_endpoint.handle(token_request(runtime, pairs))


def test_disabled_by_default(runtime: Runtime, client: Client) -> None:
    assert runtime.settings.allow_client_secret is False
    with pytest.raises(Conflict, match="disabled"):
        runtime.agents.set_client_secret(client.id)
    for attempt in (with_basic, with_post):
        with pytest.raises(InvalidClient, match="disabled"):
            attempt(runtime, client.id, "anything")


@pytest.fixture
def legacy(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update={"allow_client_secret": True}), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


def test_the_secret_is_stored_only_as_an_argon2_hash(legacy: Runtime) -> None:
    client = register(legacy)
    secret = legacy.agents.set_client_secret(client.id)
    assert len(secret) >= 32
    with reading(legacy.engine) as conn:
        stored = conn.execute(select(agents.c.secret_hash).where(agents.c.id == client.id)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert secret not in stored
    assert "secret_hash" not in repr(legacy.agents.get(client.id))


def test_basic_and_post_authenticate_with_the_secret(legacy: Runtime) -> None:
    client = register(legacy)
    secret = legacy.agents.set_client_secret(client.id)
    assert with_basic(legacy, client.id, secret).token_type == "Bearer"
    assert with_post(legacy, client.id, secret).token_type == "Bearer"


def test_wrong_secrets_and_clients_are_refused(legacy: Runtime) -> None:
    client = register(legacy)
    secret = legacy.agents.set_client_secret(client.id)
    keyed_only = register(legacy)
    for client_id, attempt_secret in (
        (client.id, secret + "x"),
        (client.id, ""),
        (client.id, secret.upper()),
        (keyed_only.id, secret),
        ("agt_nobody", secret),
        ("", secret),
    ):
        for attempt in (with_basic, with_post):
            with pytest.raises(InvalidClient, match="invalid client credentials"):
                attempt(legacy, client_id, attempt_secret)


def test_a_new_secret_replaces_the_old(legacy: Runtime) -> None:
    client = register(legacy)
    first = legacy.agents.set_client_secret(client.id)
    second = legacy.agents.set_client_secret(client.id)
    assert with_post(legacy, client.id, second)
    with pytest.raises(InvalidClient):
        with_post(legacy, client.id, first)


@pytest.mark.parametrize("header", ["Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()])
def test_malformed_basic_headers_are_refused(legacy: Runtime, header: str) -> None:
    request = token_request(legacy, [("grant_type", "client_credentials")], authorization=header)
    with pytest.raises(InvalidClient):
        legacy.token_endpoint.handle(request)


def test_a_decommissioned_agent_gets_no_secret(legacy: Runtime) -> None:
    client = register(legacy)
    legacy.agents.transition(client.id, Transition.DECOMMISSION)
    with pytest.raises(Conflict, match="decommissioned"):
        legacy.agents.set_client_secret(client.id)
