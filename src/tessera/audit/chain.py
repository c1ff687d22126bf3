"""Verifying a stretch of the hash chain against its signed checkpoints.

Used on the live database and on an exported file alike. It detects:
- a modified record (its hash no longer matches its content),
- a deleted record (a gap in ``seq``, or the next record's ``prev_hash`` breaks),
- an inserted record (``seq`` repeats or the link breaks),
- reordered records (``seq`` goes backwards or links break),
- a truncated tail (a signed checkpoint points past the last record),
and names the first bad record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from tessera.audit.checkpoints import Checkpoint, verify_checkpoint
from tessera.identity.keys import PublicKey
from tessera.tokens.jose import JwsError


class ChainRecord(Protocol):
    """What the walk reads of a record: an ``AuditRecord``, or a stored row standing in for one."""

    @property
    def seq(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    def compute_hash(self) -> str: ...


@dataclass
class VerifyReport:
    ok: bool = True
    records: int = 0
    checkpoints_verified: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problem: str | None = None
    bad_seq: int | None = None
    bad_id: str | None = None
    unsigned_tail: int = 0
    notes: list[str] = field(default_factory=list)

    def fail(self, problem: str, record: ChainRecord | None = None, seq: int | None = None) -> VerifyReport:
        self.ok = False
        self.problem = problem
        self.bad_seq = record.seq if record is not None else seq
        self.bad_id = record.id if record is not None else None
        return self


def verify_chain(  # noqa: PLR0911 - one early return per kind of tampering, each named
    records: Iterable[ChainRecord],
    checkpoints: list[Checkpoint],
    *,
    keys: dict[str, tuple[PublicKey, tuple[str, ...]]],
    anchor_seq: int,
    anchor_hash: str,
    issuer: str | None = None,
    hash_checked: Callable[[ChainRecord], bool] | None = None,
) -> VerifyReport:
    """Walk ``records`` in the order given, starting after the anchor ``(seq, hash)``.

    ``hash_checked(record)`` true means the caller already knows the record's hash
    is right (see ``verify_store``), so it is not recomputed from the content.
    """
    report = VerifyReport()
    by_seq = {c.seq: c for c in checkpoints}
    for checkpoint in checkpoints:
        try:
            verify_checkpoint(checkpoint, keys, issuer)
        except JwsError as exc:
            return report.fail(f"checkpoint at seq {checkpoint.seq} is invalid: {exc}", seq=checkpoint.seq)
    anchor = by_seq.get(anchor_seq)
    if anchor_seq > 0 and anchor is None:
        # Only a signed checkpoint may stand in for the records before it (pruned, or not exported).
        return report.fail(f"no signed checkpoint vouches for the anchor at seq {anchor_seq}", seq=anchor_seq)
    if anchor is not None and anchor.head_hash != anchor_hash:
        return report.fail(f"anchor at seq {anchor_seq} does not match its checkpoint", seq=anchor_seq)
    prev_seq, prev_hash = anchor_seq, anchor_hash
    for record in records:
        report.records += 1
        if report.first_seq is None:
            report.first_seq = record.seq
        if record.seq != prev_seq + 1:
            gap = record.seq > prev_seq + 1
            what = "missing records before" if gap else "out-of-order or repeated record"
            return report.fail(f"{what} seq {record.seq} (expected {prev_seq + 1})", record)
        if record.prev_hash != prev_hash:
            return report.fail(f"record seq {record.seq} does not link to the record before it", record)
        if not (hash_checked is not None and hash_checked(record)) and record.compute_hash() != record.hash:
            return report.fail(f"record seq {record.seq} was modified (hash mismatch)", record)
        signed = by_seq.get(record.seq)
        if signed is not None:
            if signed.head_hash != record.hash:
                return report.fail(f"record seq {record.seq} differs from its signed checkpoint", record)
            report.checkpoints_verified += 1
        prev_seq, prev_hash = record.seq, record.hash
        report.last_seq = record.seq
    beyond = [c.seq for c in checkpoints if c.seq > prev_seq]
    if beyond:
        return report.fail(
            f"records up to seq {max(beyond)} were signed but the log ends at seq {prev_seq} (deleted tail)",
            seq=prev_seq + 1,
        )
    covered = [c.seq for c in checkpoints if c.seq <= prev_seq]
    report.unsigned_tail = prev_seq - max(covered, default=anchor_seq)
    return report
