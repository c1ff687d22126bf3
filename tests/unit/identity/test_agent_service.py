"""Registering agents and managing their keys: validation, normalisation, key rotation with overlap."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.identity.agents import LifecycleState, Transition
from tessera.identity.service import MAX_KEYS, NewAgent
from tessera.runtime import Runtime
from tessera.sdk.proofs import generate_private_jwk, public_jwk


def create(runtime: Runtime, **fields: Any) -> Any:
    return runtime.agents.create(NewAgent(**{"name": "agent", "owner": "o@example.com", **fields}))


def test_a_registered_agent(runtime: Runtime) -> None:
    jwk = public_jwk(generate_private_jwk())
    agent = create(
        runtime,
        name="  invoice bot ",
        owner="Alice@Example.COM",
        description="reconciles invoices",
        attributes={"team": "finance", "env": "prod"},
        segment="finance",
        labels=("batch", "batch", "eu"),
        scopes=("invoices:read", "invoices:read", "ledger:write"),
        resource_uris=("https://erp.example/api",),
        max_ttl=120,
        require_dpop=True,
        jwks=(jwk,),
    )
    assert agent.id.startswith("agt_")
    assert agent.name == "invoice bot"
    assert agent.owner == "alice@example.com"
    assert agent.labels == ("batch", "eu")
    assert agent.scopes == ("invoices:read", "ledger:write")
    assert agent.state is LifecycleState.ACTIVE
    assert agent.created_at == runtime.clock.now()
    assert [k.kid for k in agent.keys] == [jwk["kid"]]
    assert runtime.agents.get(agent.id) == agent


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"owner": "not-an-email"}, "owner"),
        ({"owner": "a@b@c"}, "owner"),
        ({"owner": "alice@example.com\n"}, "owner"),
        ({"scopes": ("has space",)}, "scope"),
        ({"scopes": ('quote"d',)}, "scope"),
        ({"scopes": ("read\n",)}, "scope"),
        ({"scopes": ("",)}, "scope"),
        ({"segment": "-leading"}, "segment"),
        ({"segment": "seg\n"}, "segment"),
        ({"labels": ("ok", "not ok")}, "label"),
        ({"labels": ("eu\n",)}, "label"),
        ({"attributes": {"1bad": "v"}}, "attribute"),
        ({"attributes": {"key\n": "v"}}, "attribute"),
        ({"attributes": {"k": "v" * 1025}}, "attribute"),
        ({"attributes": {"k": 1}}, "attribute"),
        ({"attributes": {f"k{i}": "v" for i in range(65)}}, "too many attributes"),
        ({"resource_uris": ("/relative",)}, "resource uri"),
        ({"resource_uris": ("https://api.example/#frag",)}, "resource uri"),
        ({"resource_uris": ("https://api.example/\n",)}, "resource uri"),
        ({"max_ttl": 9}, "max_ttl"),
        ({"jwks": tuple(public_jwk(generate_private_jwk()) for _ in range(MAX_KEYS + 1))}, "at most"),
        ({"jwks": ({"kty": "oct", "k": "c2VjcmV0"},)}, "private"),
    ],
)
def test_invalid_registrations_are_refused(runtime: Runtime, fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationFailed, match=match):
        create(runtime, **fields)
    assert runtime.agents.list() == []


def test_two_keys_may_not_share_a_kid(runtime: Runtime) -> None:
    a, b = public_jwk(generate_private_jwk()), public_jwk(generate_private_jwk())
    with pytest.raises(ValidationFailed, match="share one kid"):
        create(runtime, jwks=(a, {**b, "kid": a["kid"]}))


def test_a_key_expiry_in_the_past_is_refused(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed, match="past"):
        create(runtime, jwks=(public_jwk(generate_private_jwk()),), key_expires_at=runtime.clock.now())


def test_keys_are_added_and_removed_never_deleted(runtime: Runtime) -> None:
    agent = create(runtime, jwks=(public_jwk(generate_private_jwk()),))
    first = agent.keys[0].kid
    added = runtime.agents.add_key(agent.id, public_jwk(generate_private_jwk("Ed25519")))
    assert added.alg == "EdDSA"
    with pytest.raises(Conflict, match="already has a key"):
        runtime.agents.add_key(agent.id, {**public_jwk(generate_private_jwk()), "kid": first})
    runtime.agents.remove_key(agent.id, first)
    with pytest.raises(NotFound):
        runtime.agents.remove_key(agent.id, first)
    with pytest.raises(NotFound):
        runtime.agents.remove_key(agent.id, "no-such-kid")
    kept = runtime.agents.get(agent.id)
    assert {k.kid for k in kept.keys} == {first, added.kid}
    assert [k.kid for k in kept.usable_keys(runtime.clock.now())] == [added.kid]


def test_at_most_ten_usable_keys(runtime: Runtime) -> None:
    agent = create(runtime)
    for _ in range(MAX_KEYS):
        runtime.agents.add_key(agent.id, public_jwk(generate_private_jwk()))
    with pytest.raises(Conflict, match="remove one first"):
        runtime.agents.add_key(agent.id, public_jwk(generate_private_jwk()))


def test_unknown_agents(runtime: Runtime) -> None:
    with pytest.raises(NotFound):
        runtime.agents.get("agt_nobody")
    assert runtime.agents.find("agt_nobody") is None
    with pytest.raises(NotFound):
        runtime.agents.add_key("agt_nobody", public_jwk(generate_private_jwk()))
    with pytest.raises(NotFound):
        runtime.agents.remove_key("agt_nobody", "kid")


def test_listing_by_owner_and_state(runtime: Runtime) -> None:
    a = create(runtime, owner="alice@example.com")
    b = create(runtime, owner="bob@example.com")
    create(runtime, owner="alice@example.com")
    runtime.agents.transition(a.id, Transition.SUSPEND)
    assert len(runtime.agents.list()) == 3
    assert len(runtime.agents.list(owner="ALICE@example.com")) == 2
    assert [x.id for x in runtime.agents.list(state=LifecycleState.SUSPENDED)] == [a.id]
    assert [x.id for x in runtime.agents.list(owner="bob@example.com", state=LifecycleState.ACTIVE)] == [b.id]
