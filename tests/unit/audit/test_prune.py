"""Pruning: what remains still verifies from the anchoring checkpoint, and the pruning is recorded."""

from __future__ import annotations

import json

from tessera.audit.maintenance import prune_before
from tessera.audit.service import ADMIN, RequestContext
from tessera.audit.verify import ExportRange, export_lines, verify_export
from tessera.clock import ManualClock
from tessera.runtime import Runtime
from tests.unit.audit.helpers import fill, head, public_keys, rows, sql, verify

DAY = 86400
T0 = 1_800_000_000.0
CONTEXT = RequestContext(actor=ADMIN, ip="192.0.2.7", reason="retention")


def three_days(runtime: Runtime, clock: ManualClock) -> tuple[int, int]:
    """Records on day 0 and day 1, each day closed by a checkpoint; day 2's records are unsigned."""
    signed = []
    for day in range(3):
        clock.set(T0 + day * DAY)
        fill(runtime, 4, start=day * 10)
        if day < 2:
            seq = runtime.audit_writer.checkpoint()
            assert seq is not None
            signed.append(seq)
    return signed[0], signed[1]


def prune(runtime: Runtime, before: float) -> tuple[int, int]:
    return prune_before(runtime.engine, runtime.auditor, int(before * 1000), CONTEXT)


def test_pruning_keeps_the_rest_verifiable_from_its_anchor(runtime: Runtime, clock: ManualClock) -> None:
    day0, _day1 = three_days(runtime, clock)
    before = rows(runtime.engine)
    kept = [r for r in before if r["seq"] > day0]
    deleted, anchor = prune(runtime, T0 + DAY - 1)
    assert (deleted, anchor) == (day0, day0)
    after = rows(runtime.engine)
    assert after[0]["seq"] == day0 + 1
    assert after[: len(kept)] == kept, "records after the anchor are untouched"
    assert head(runtime.engine)["anchor_seq"] == day0
    report = verify(runtime)
    assert report.ok, report.problem
    assert report.first_seq == day0 + 1
    assert report.records == len(kept) + 1


def test_the_pruning_is_itself_recorded(runtime: Runtime, clock: ManualClock) -> None:
    day0, _day1 = three_days(runtime, clock)
    prune(runtime, T0 + DAY - 1)
    last = rows(runtime.engine)[-1]
    body = json.loads(last["body"])
    assert last["type"] == "audit.pruned"
    assert body["data"] == {"deleted": day0, "anchor_seq": day0}
    assert body["actor"] == {"type": "admin", "id": "admin"}
    assert body["network"]["ip"] == "192.0.2.7"
    assert body["reason"] == "retention"


def test_pruning_twice_or_too_early_deletes_nothing(runtime: Runtime, clock: ManualClock) -> None:
    day0, _day1 = three_days(runtime, clock)
    assert prune(runtime, T0 - 1) == (0, 0)
    assert prune(runtime, T0 + DAY - 1) == (day0, day0)
    assert prune(runtime, T0 + DAY - 1) == (0, day0)
    assert [r["type"] for r in rows(runtime.engine)][-3:] == ["audit.pruned"] * 3
    assert verify(runtime).ok


def test_pruning_up_to_the_newest_checkpoint(runtime: Runtime, clock: ManualClock) -> None:
    _day0, day1 = three_days(runtime, clock)
    deleted, anchor = prune(runtime, T0 + 10 * DAY)
    assert (deleted, anchor) == (day1, day1)
    report = verify(runtime)
    assert report.ok, report.problem
    assert report.records == 5  # day 2's four, and the pruning


def test_an_export_after_pruning_verifies_offline(runtime: Runtime, clock: ManualClock) -> None:
    day0, _day1 = three_days(runtime, clock)
    prune(runtime, T0 + DAY - 1)
    runtime.audit_writer.checkpoint()
    lines = list(
        export_lines(
            runtime.engine, issuer=runtime.issuer, wanted=ExportRange(), now_ms=int(clock.now() * 1000)
        )
    )
    assert json.loads(lines[0])["anchor"]["seq"] == day0
    report = verify_export(lines, public_keys(runtime))
    assert report.ok, report.problem
    assert report.first_seq == day0 + 1


def test_tampering_after_pruning_is_still_caught(runtime: Runtime, clock: ManualClock) -> None:
    day0, _day1 = three_days(runtime, clock)
    prune(runtime, T0 + DAY - 1)
    sql(runtime.engine, "DELETE FROM audit_records WHERE seq = :s", s=day0 + 1)
    report = verify(runtime)
    assert (report.ok, report.bad_seq) == (False, day0 + 2)


def test_a_moved_anchor_is_caught(runtime: Runtime, clock: ManualClock) -> None:
    """Pruning by hand (delete the oldest rows, move the anchor) where no checkpoint vouches for it."""
    day0, _day1 = three_days(runtime, clock)
    prune(runtime, T0 + DAY - 1)
    sql(runtime.engine, "DELETE FROM audit_records WHERE seq <= :s", s=day0 + 2)
    first = rows(runtime.engine)[0]
    sql(
        runtime.engine,
        "UPDATE audit_head SET anchor_seq = :s, anchor_hash = :h",
        s=day0 + 2,
        h=first["prev_hash"],
    )
    report = verify(runtime)
    assert (report.ok, report.bad_seq) == (False, day0 + 2)
    assert "anchor" in (report.problem or "")


def test_an_edited_anchor_hash_is_caught(runtime: Runtime, clock: ManualClock) -> None:
    day0, _day1 = three_days(runtime, clock)
    prune(runtime, T0 + DAY - 1)
    sql(runtime.engine, "UPDATE audit_head SET anchor_hash = :h", h="e" * 64)
    report = verify(runtime)
    assert (report.ok, report.bad_seq) == (False, day0)
