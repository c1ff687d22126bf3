"""Group commit: units from many threads share commits, yet each gets its own outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, func, select

from tessera.storage.database import reading
from tessera.storage.group_commit import GroupCommit
from tessera.storage.single_use import AlreadyUsed, SqlSingleUseStore
from tessera.storage.tables import used_jtis

STORE = SqlSingleUseStore()


def claims(*keys: str) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        for key in keys:
            STORE.claim(conn, key, 2e9)
        return "+".join(keys)

    return work


def stored(engine: Engine) -> set[str]:
    with reading(engine) as conn:
        return set(conn.execute(select(used_jtis.c.key)).scalars())


def test_a_lone_unit_commits_and_returns_its_result(engine: Engine) -> None:
    commits = GroupCommit(engine)
    assert commits.run(claims("a", "b")) == "a+b"
    assert stored(engine) == {"a", "b"}


def test_a_failing_unit_undoes_only_its_own_writes(engine: Engine) -> None:
    commits = GroupCommit(engine)
    commits.run(claims("taken"))
    with pytest.raises(AlreadyUsed):
        commits.run(claims("fresh", "taken"))
    assert stored(engine) == {"taken"}


def test_concurrent_units_each_get_their_own_outcome(engine: Engine) -> None:
    """Many threads at once, so batches form: every unit commits or fails on its own."""
    commits = GroupCommit(engine)
    commits.run(claims("taken"))
    results: dict[int, str] = {}
    errors: dict[int, BaseException] = {}
    start = threading.Barrier(16)

    def worker(index: int) -> None:
        start.wait()
        keys = (f"k{index}", "taken") if index % 4 == 0 else (f"k{index}",)
        try:
            results[index] = commits.run(claims(*keys))
        except Exception as exc:
            errors[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(errors) == [0, 4, 8, 12]
    assert all(isinstance(exc, AlreadyUsed) for exc in errors.values())
    assert results == {i: f"k{i}" for i in range(16) if i % 4}
    assert stored(engine) == {"taken"} | {f"k{i}" for i in range(16) if i % 4}


def test_the_same_key_in_one_batch_is_claimed_once(engine: Engine) -> None:
    commits = GroupCommit(engine)
    wins: list[int] = []
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        start.wait()
        try:
            commits.run(claims("contested"))
            wins.append(index)
        except AlreadyUsed:
            pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(wins) == 1
    with reading(engine) as conn:
        assert conn.execute(select(func.count()).select_from(used_jtis)).scalar_one() == 1
