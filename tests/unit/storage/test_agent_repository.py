"""``SqlAgentRepository`` against its contract (``identity/repository.py``), on both stores."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine

from tessera.errors import Conflict
from tessera.identity.agents import Agent, AgentKey, LifecycleState
from tessera.storage.agents import SqlAgentRepository
from tessera.storage.database import reading, writing

REPO = SqlAgentRepository()
KEY = AgentKey(
    kid="k1",
    alg="ES256",
    jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1", "alg": "ES256"},
    created_at=1_800_000_000.125,  # registered with the agent
    expires_at=1_900_000_000.5,
)


def agent(agent_id: str = "agt_1", **changes: object) -> Agent:
    base = Agent(
        id=agent_id,
        name="Agent Ünïcode ✓",
        owner="alice@example.com",
        description="does things\nover lines",
        attributes={"team": "finance", "région": "eu-west", "empty": ""},
        segment="finance",
        labels=("batch", "eu"),
        scopes=("invoices:read", "ledger:write"),
        resource_uris=("https://erp.example/api",),
        max_ttl=120,
        require_dpop=True,
        state=LifecycleState.ACTIVE,
        created_at=1_800_000_000.125,
        updated_at=1_800_000_000.125,
        expires_at=1_800_086_400.0,
        keys=(KEY,),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_round_trip(engine: Engine) -> None:
    original = agent()
    with writing(engine) as conn:
        REPO.add(conn, original)
    with reading(engine) as conn:
        assert REPO.get(conn, "agt_1") == original
        assert REPO.get(conn, "agt_nobody") is None


def test_minimal_agent_round_trip(engine: Engine) -> None:
    bare = agent(
        "agt_2", segment=None, labels=(), scopes=(), resource_uris=(), attributes={}, expires_at=None, keys=()
    )
    with writing(engine) as conn:
        REPO.add(conn, bare)
    with reading(engine) as conn:
        assert REPO.get(conn, "agt_2") == bare


def test_an_existing_id_is_a_conflict_and_nothing_changes(engine: Engine) -> None:
    with writing(engine) as conn:
        REPO.add(conn, agent())
    with pytest.raises(Conflict), writing(engine) as conn:
        REPO.add(conn, agent(name="impostor"))
    with reading(engine) as conn:
        assert REPO.get(conn, "agt_1") == agent()


def test_state_changes(engine: Engine) -> None:
    with writing(engine) as conn:
        REPO.add(conn, agent())
        REPO.set_state(conn, "agt_1", LifecycleState.QUARANTINED, "anomaly", 1_800_000_100.0)
    with reading(engine) as conn:
        stored = REPO.get(conn, "agt_1")
    assert stored is not None
    assert (stored.state, stored.state_reason, stored.updated_at) == (
        LifecycleState.QUARANTINED,
        "anomaly",
        1_800_000_100.0,
    )


def test_keys_are_removed_by_stamp_never_deleted(engine: Engine) -> None:
    second = replace(KEY, kid="k2", created_at=KEY.created_at + 1, expires_at=None)
    with writing(engine) as conn:
        REPO.add(conn, agent())
        REPO.add_key(conn, "agt_1", second)
        with pytest.raises(Conflict):
            REPO.add_key(conn, "agt_1", second)
        assert REPO.remove_key(conn, "agt_1", "k1", 1_800_000_500.0) is True
        assert REPO.remove_key(conn, "agt_1", "k1", 1_800_000_600.0) is False
        assert REPO.remove_key(conn, "agt_1", "nope", 1_800_000_600.0) is False
    with reading(engine) as conn:
        stored = REPO.get(conn, "agt_1")
    assert stored is not None
    assert [(k.kid, k.removed_at) for k in stored.keys] == [("k1", 1_800_000_500.0), ("k2", None)]
    assert [k.kid for k in stored.usable_keys(1_800_000_501.0)] == ["k2"]


def test_the_same_kid_may_belong_to_two_agents(engine: Engine) -> None:
    with writing(engine) as conn:
        REPO.add(conn, agent("agt_1"))
        REPO.add(conn, agent("agt_2"))
    with reading(engine) as conn:
        assert [a.id for a in REPO.list(conn)] == ["agt_1", "agt_2"]


def test_secret_hash(engine: Engine) -> None:
    with writing(engine) as conn:
        REPO.add(conn, agent())
        REPO.set_secret_hash(conn, "agt_1", "$argon2id$v=19$...", 1_800_000_001.0)
    with reading(engine) as conn:
        stored = REPO.get(conn, "agt_1")
    assert stored is not None
    assert stored.secret_hash == "$argon2id$v=19$..."


def test_list_filters_and_orders(engine: Engine) -> None:
    with writing(engine) as conn:
        REPO.add(conn, agent("agt_b", created_at=2.0, owner="bob@example.com"))
        REPO.add(conn, agent("agt_a", created_at=1.0))
        REPO.add(conn, agent("agt_c", created_at=3.0, state=LifecycleState.SUSPENDED))
    with reading(engine) as conn:
        assert [a.id for a in REPO.list(conn)] == ["agt_a", "agt_b", "agt_c"]
        assert [a.id for a in REPO.list(conn, owner="ALICE@example.com")] == ["agt_a", "agt_c"]
        assert [a.id for a in REPO.list(conn, state=LifecycleState.SUSPENDED)] == ["agt_c"]
        assert all(a.keys == (KEY,) for a in REPO.list(conn))
