"""Single-use values are single use across engines (replicas) racing on one database."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from tessera.storage.database import create_database_engine, reading, writing
from tessera.storage.single_use import AlreadyUsed, SqlSingleUseStore, single_use_key
from tessera.storage.tables import used_jtis

STORE = SqlSingleUseStore()


@pytest.fixture
def second_engine(database_url: str, engine: Engine) -> Iterator[Engine]:
    """Another engine on the same database, as a second replica would have."""
    other = create_database_engine(database_url)
    yield other
    other.dispose()


def claim(engine: Engine, key: str, expires_at: float = 2e9) -> None:
    with writing(engine) as conn:
        STORE.claim(conn, key, expires_at)


def test_a_value_is_claimed_once(engine: Engine) -> None:
    claim(engine, "k1")
    with pytest.raises(AlreadyUsed):
        claim(engine, "k1")
    claim(engine, "k2")


class Abort(Exception):
    pass


def claim_then_abort(engine: Engine, key: str) -> None:
    with writing(engine) as conn:
        STORE.claim(conn, key, 2e9)
        raise Abort


def test_a_rolled_back_claim_does_not_consume(engine: Engine) -> None:
    with pytest.raises(Abort):
        claim_then_abort(engine, "k1")
    claim(engine, "k1")


def test_a_failed_claim_leaves_the_transaction_usable(engine: Engine) -> None:
    claim(engine, "taken")
    with writing(engine) as conn:
        with pytest.raises(AlreadyUsed):
            STORE.claim(conn, "taken", 2e9)
        STORE.claim(conn, "fresh", 2e9)
    with pytest.raises(AlreadyUsed):
        claim(engine, "fresh")


def test_keys_are_bounded_and_separate_purposes(engine: Engine) -> None:
    a = single_use_key("client_assertion", "agt_1", "j" * 10_000)
    assert len(a) == 64
    assert a != single_use_key("dpop", "agt_1", "j" * 10_000)
    assert a != single_use_key("client_assertion", "agt_2", "j" * 10_000)
    claim(engine, a)


def test_prune_removes_only_expired_values(engine: Engine) -> None:
    claim(engine, "old", expires_at=100.0)
    claim(engine, "new", expires_at=300.0)
    with writing(engine) as conn:
        assert STORE.prune(conn, 200.0) == 1
    claim(engine, "old")
    with pytest.raises(AlreadyUsed):
        claim(engine, "new")


def race(engines: list[Engine], key: str) -> tuple[int, int, list[BaseException]]:
    """Every engine's thread claims ``key`` at the same moment; returns (wins, losses, errors)."""
    barrier = threading.Barrier(len(engines))
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def contend(which: Engine) -> None:
        try:
            barrier.wait(timeout=30)
            claim(which, key)
            outcomes.append("won")
        except AlreadyUsed:
            outcomes.append("lost")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes.count("won"), outcomes.count("lost"), errors


def test_racing_replicas_claim_exactly_once(engine: Engine, second_engine: Engine) -> None:
    engines = [engine, second_engine] * 4
    rounds = 5
    for round_ in range(rounds):
        assert race(engines, f"race-{round_}") == (1, len(engines) - 1, [])
    with reading(engine) as conn:
        assert conn.execute(select(func.count()).select_from(used_jtis)).scalar_one() == rounds
