"""Tampering with the audit tables in SQLite and PostgreSQL: ``verify_store`` names the first bad record."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from tessera.audit.chain import VerifyReport
from tessera.audit.records import build_record
from tessera.storage.audit import AuditHeadMissing
from tests.unit.audit.conftest import Chain
from tests.unit.audit.helpers import (
    SHIFT,
    fill,
    head,
    insert_row,
    rewrite_body,
    row,
    sample_event,
    shift_rows,
    sql,
    swap_rows,
    verify,
)


def failed(chain: Chain) -> VerifyReport:
    report = verify(chain.runtime)
    assert not report.ok, "tampering went unnoticed"
    assert report.problem
    assert "\n" not in report.problem
    return report


def test_an_untouched_log_verifies(chain: Chain) -> None:
    report = verify(chain.runtime)
    assert report.ok, report.problem
    assert (report.records, report.first_seq, report.last_seq) == (chain.last, 1, chain.last)
    assert report.checkpoints_verified == 2
    assert report.unsigned_tail == 2


def test_an_edited_body_is_named(chain: Chain) -> None:
    target = chain.at(chain.checkpoints[0] - 2)
    rewrite_body(chain.engine, target.seq, reason="nothing to see")
    report = failed(chain)
    assert (report.bad_seq, report.bad_id) == (target.seq, target.id)
    assert "modified" in (report.problem or "")


def test_an_edited_body_with_its_hash_recomputed_breaks_the_next_link(chain: Chain) -> None:
    target = chain.at(chain.checkpoints[0] - 2)
    rewrite_body(chain.engine, target.seq, rehash=True, reason="nothing to see")
    report = failed(chain)
    after = chain.at(target.seq + 1)
    assert (report.bad_seq, report.bad_id) == (after.seq, after.id)
    assert "does not link" in (report.problem or "")


def test_a_rehashed_checkpointed_record_differs_from_its_signature(chain: Chain) -> None:
    """The last record before a checkpoint has no successor to break; the signature catches it."""
    target = chain.at(chain.checkpoints[1])
    rewrite_body(chain.engine, target.seq, rehash=True, reason="nothing to see")
    report = failed(chain)
    assert (report.bad_seq, report.bad_id) == (target.seq, target.id)


def test_an_edited_index_column_is_named(chain: Chain) -> None:
    """Search reads the columns, not the body: editing only a column must not pass either."""
    target = chain.at(chain.checkpoints[0] - 1)
    edits: list[tuple[str, Any]] = [
        ("subject", "agt_innocent"),
        ("actor_id", "someone_else"),
        ("type", "test.other"),
        ("ts_ms", 1),
        ("task_id", "task-other"),
        ("token_hash", "0" * 64),
    ]
    for column, value in edits:
        original = row(chain.engine, target.seq)[column]
        update = f"UPDATE audit_records SET {column} = :v WHERE seq = :s"  # noqa: S608 - fixed names
        sql(chain.engine, update, v=value, s=target.seq)
        report = failed(chain)
        assert (report.bad_seq, report.bad_id) == (target.seq, target.id), column
        assert column.split("_")[0] in (report.problem or ""), (column, report.problem)
        sql(chain.engine, update, v=original, s=target.seq)
    assert verify(chain.runtime).ok


def test_a_deleted_middle_record_is_named(chain: Chain) -> None:
    gone = chain.checkpoints[0] + 1
    sql(chain.engine, "DELETE FROM audit_records WHERE seq = :s", s=gone)
    report = failed(chain)
    after = chain.at(gone + 1)
    assert (report.bad_seq, report.bad_id) == (after.seq, after.id)
    assert "missing" in (report.problem or "")


def test_deleting_the_last_records_is_caught(chain: Chain) -> None:
    sql(chain.engine, "DELETE FROM audit_records WHERE seq > :s", s=chain.last - 2)
    report = failed(chain)
    assert report.bad_seq == chain.last - 1
    assert "deleted" in (report.problem or "")


def test_deleting_a_signed_tail_is_caught_even_with_the_head_moved_back(chain: Chain) -> None:
    """Covering the tracks in ``audit_head`` too: the signed checkpoint still vouches for the gone records."""
    keep = chain.checkpoints[1] - 3
    sql(chain.engine, "DELETE FROM audit_records WHERE seq > :s", s=keep)
    sql(chain.engine, "UPDATE audit_head SET seq = :s, hash = :h", s=keep, h=chain.at(keep).hash)
    report = failed(chain)
    assert report.bad_seq == keep + 1
    assert "deleted tail" in (report.problem or "")


def test_a_forged_record_inserted_with_renumbering_is_named(chain: Chain) -> None:
    """A careful forger: the fake links to its predecessor and later rows are renumbered, head too."""
    at = chain.checkpoints[0] + 2
    before, displaced = chain.at(at - 1), chain.at(at)
    forged = build_record(
        sample_event(666, reason="approved by nobody"),
        seq=at,
        record_id="aud_forged",
        ts_ms=displaced.ts_ms,
        prev_hash=before.hash,
    )
    shift_rows(chain.engine, at, 1)
    insert_row(chain.engine, forged)
    sql(chain.engine, "UPDATE audit_head SET seq = seq + 1")
    report = failed(chain)
    # The forgery itself is consistent; the genuine record it displaced no longer fits after it.
    assert (report.bad_seq, report.bad_id) == (displaced.seq, displaced.id)


def test_a_crude_forged_record_is_named_itself(chain: Chain) -> None:
    at = chain.checkpoints[0] + 2
    forged = build_record(sample_event(666), seq=at, record_id="aud_forged", ts_ms=1, prev_hash="f" * 64)
    shift_rows(chain.engine, at, 1)
    insert_row(chain.engine, forged)
    report = failed(chain)
    assert (report.bad_seq, report.bad_id) == (at, "aud_forged")


def test_a_record_appended_past_the_head_is_caught(chain: Chain) -> None:
    last = chain.at(chain.last)
    forged = build_record(
        sample_event(667), seq=last.seq + 1, record_id="aud_forged", ts_ms=last.ts_ms, prev_hash=last.hash
    )
    insert_row(chain.engine, forged)
    report = failed(chain)
    assert report.bad_seq == last.seq + 1


def test_swapped_records_are_named(chain: Chain) -> None:
    a, b = chain.checkpoints[0] + 1, chain.checkpoints[0] + 3
    swap_rows(chain.engine, a, b)
    report = failed(chain)
    # The first row out of place holds record b.
    assert (report.bad_seq, report.bad_id) == (b, chain.at(b).id)


def test_a_renumbered_last_record_is_caught(chain: Chain) -> None:
    """Only the ``seq`` column of the newest record moved: contents intact, order claim false."""
    sql(chain.engine, "UPDATE audit_records SET seq = :n WHERE seq = :s", n=SHIFT, s=chain.last)
    report = failed(chain)
    assert report.bad_id == chain.at(chain.last).id


def test_a_deleted_checkpoint_row_does_not_hide_an_edit(chain: Chain) -> None:
    rewrite_body(chain.engine, 3, reason="edited")
    sql(chain.engine, "DELETE FROM audit_checkpoints")
    report = failed(chain)
    assert (report.bad_seq, report.bad_id) == (3, chain.at(3).id)


def test_a_forged_checkpoint_row_fails(chain: Chain) -> None:
    sql(
        chain.engine,
        "UPDATE audit_checkpoints SET head_hash = :h WHERE seq = :s",
        h="e" * 64,
        s=chain.checkpoints[0],
    )
    report = failed(chain)
    assert report.bad_seq == chain.checkpoints[0]
    assert "checkpoint" in (report.problem or "")


def test_a_missing_head_row_fails_loudly(chain: Chain) -> None:
    before = head(chain.engine)
    sql(chain.engine, "DELETE FROM audit_head")
    with pytest.raises(AuditHeadMissing):
        verify(chain.runtime)
    sql(
        chain.engine,
        "INSERT INTO audit_head (id, seq, hash, anchor_seq, anchor_hash) VALUES (1, :s, :h, :a, :ah)",
        s=before["seq"],
        h=before["hash"],
        a=before["anchor_seq"],
        ah=before["anchor_hash"],
    )
    assert verify(chain.runtime).ok


def test_records_written_while_verifying_are_not_mistaken_for_tampering(chain: Chain) -> None:
    """Verification on a live store: a record committed mid-walk must not read as an edit or deletion."""
    written: list[int] = []

    def append_once(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not written and "FROM audit_records" in statement:
            written.append(fill(chain.runtime, 1, start=100)[0].seq)

    event.listen(chain.engine, "before_cursor_execute", append_once)
    try:
        report = verify(chain.runtime, chain.engine)
    finally:
        event.remove(chain.engine, "before_cursor_execute", append_once)
    assert written == [chain.last + 1]
    assert report.ok, report.problem
    assert verify(chain.runtime).records == chain.last + 1
