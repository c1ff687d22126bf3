"""The change feed: ordered dispatch, a low-water mark, and gaps from out-of-order commits."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine, insert

from tessera.clock import ManualClock
from tessera.events.change_feed import Change, ChangeFollower, latest_seq, publish
from tessera.storage.database import writing
from tessera.storage.tables import changes


def follower(engine: Engine, clock: ManualClock, **kwargs: object) -> tuple[ChangeFollower, list[Change]]:
    seen: list[Change] = []
    feed = ChangeFollower(engine, clock, start_after=0, gap_grace=10.0, **kwargs)  # type: ignore[arg-type]
    feed.on("test", seen.append)
    return feed, seen


def publish_one(engine: Engine, clock: ManualClock, subject: str, kind: str = "test") -> None:
    with writing(engine) as conn:
        publish(conn, kind, subject, {"n": subject}, clock.now())


def insert_at(engine: Engine, clock: ManualClock, seq: int) -> None:
    """Write an entry with a chosen seq, as a transaction that took it earlier might commit late."""
    with writing(engine) as conn:
        conn.execute(
            insert(changes).values(seq=seq, kind="test", subject=str(seq), payload={}, created_at=clock.now())
        )


def test_entries_are_dispatched_in_order_by_kind(engine: Engine, clock: ManualClock) -> None:
    feed, seen = follower(engine, clock)
    other: list[Change] = []
    feed.on("other", other.append)
    for subject in ("a", "b"):
        publish_one(engine, clock, subject)
    publish_one(engine, clock, "c", kind="other")
    publish_one(engine, clock, "d", kind="unhandled")
    assert feed.poll_once() == 4
    assert [c.subject for c in seen] == ["a", "b"]
    assert [c.payload for c in seen] == [{"n": "a"}, {"n": "b"}]
    assert [c.subject for c in other] == ["c"]
    assert feed.position == latest_seq(engine)
    assert feed.poll_once() == 0


def test_start_after_skips_history(engine: Engine, clock: ManualClock) -> None:
    publish_one(engine, clock, "old")
    seen: list[Change] = []
    feed = ChangeFollower(engine, clock, start_after=latest_seq(engine))
    feed.on("test", seen.append)
    publish_one(engine, clock, "new")
    feed.poll_once()
    assert [c.subject for c in seen] == ["new"]


def test_batches(engine: Engine, clock: ManualClock) -> None:
    feed, seen = follower(engine, clock, batch=2)
    for i in range(5):
        publish_one(engine, clock, str(i))
    assert [feed.poll_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [c.subject for c in seen] == ["0", "1", "2", "3", "4"]


def test_a_failing_handler_does_not_stop_the_feed(
    engine: Engine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    feed, seen = follower(engine, clock)

    def broken(change: Change) -> None:
        raise RuntimeError(f"cannot handle {change.seq}")

    feed.on("test", broken)
    publish_one(engine, clock, "a")
    publish_one(engine, clock, "b")
    with caplog.at_level(logging.ERROR):
        assert feed.poll_once() == 2
    assert [c.subject for c in seen] == ["a", "b"]
    assert "change handler for test failed" in caplog.text


def test_a_gap_is_waited_for_then_filled(engine: Engine, clock: ManualClock) -> None:
    feed, seen = follower(engine, clock)
    insert_at(engine, clock, 1)
    insert_at(engine, clock, 3)  # seq 2 is taken but not yet committed
    assert feed.poll_once() == 2
    assert feed.position == 1
    assert feed.poll_once() == 0  # 3 is not dispatched twice while waiting
    insert_at(engine, clock, 2)
    assert feed.poll_once() == 1
    assert [c.seq for c in seen] == [1, 3, 2]
    assert feed.position == 3


def test_a_gap_older_than_the_grace_is_skipped(engine: Engine, clock: ManualClock) -> None:
    feed, seen = follower(engine, clock)
    insert_at(engine, clock, 1)
    insert_at(engine, clock, 3)
    feed.poll_once()
    clock.advance(10.0)
    feed.poll_once()
    assert feed.position == 1  # not older than the grace yet
    clock.advance(0.5)
    feed.poll_once()
    assert feed.position == 3
    insert_at(engine, clock, 4)
    feed.poll_once()
    assert [c.seq for c in seen] == [1, 3, 4]
    assert feed.position == 4
