"""``verify_store`` hashes stored bodies as they are, and still reports exactly what the content check does.

Up to the last signed checkpoint it hashes the ``body`` column's bytes instead of
re-serialising each record; on any problem it walks again recomputing every hash
from the content. Each case here compares its report with that content-only walk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from tessera.audit import verify as verify_module
from tessera.audit.chain import VerifyReport
from tessera.audit.records import AuditRecord
from tests.unit.audit.conftest import Chain
from tests.unit.audit.helpers import public_keys, rewrite_body, row, sql, verify


def content_only(chain: Chain) -> VerifyReport:
    return verify_module._verify_store(
        chain.engine, public_keys(chain.runtime), chain.runtime.issuer, stored_bytes=False
    )


def reencode(chain: Chain, seq: int, *, rehash: bool) -> None:
    """The same content in another JSON encoding (spaces, escapes), optionally with a matching hash."""
    text = json.dumps(json.loads(row(chain.engine, seq)["body"]), indent=1, ensure_ascii=True)
    new_hash = hashlib.sha256(text.encode()).hexdigest() if rehash else row(chain.engine, seq)["hash"]
    sql(
        chain.engine,
        "UPDATE audit_records SET body = :b, hash = :h WHERE seq = :s",
        b=text,
        h=new_hash,
        s=seq,
    )


def add_key(chain: Chain, seq: int) -> None:
    """A field no record has, with the hash column rewritten to match the new bytes."""
    body = json.loads(row(chain.engine, seq)["body"])
    body["extra"] = "smuggled"
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    new_hash = hashlib.sha256(text.encode()).hexdigest()
    sql(
        chain.engine,
        "UPDATE audit_records SET body = :b, hash = :h WHERE seq = :s",
        b=text,
        h=new_hash,
        s=seq,
    )


def signed(chain: Chain) -> int:
    return chain.checkpoints[0] - 2


def edit(chain: Chain, seq: int, *, rehash: bool) -> None:
    rewrite_body(chain.engine, seq, rehash=rehash, reason="nothing to see")


def set_sql(statement: str) -> Callable[[Chain], None]:
    return lambda chain: sql(chain.engine, statement, s=signed(chain))


TAMPERING: dict[str, Callable[[Chain], None]] = {
    "untouched": lambda chain: None,
    "re-encoded, hash kept": lambda chain: reencode(chain, signed(chain), rehash=False),
    "re-encoded, hash rewritten": lambda chain: reencode(chain, signed(chain), rehash=True),
    "re-encoded at a checkpoint": lambda chain: reencode(chain, chain.checkpoints[1], rehash=True),
    "re-encoded in the unsigned tail": lambda chain: reencode(chain, chain.last, rehash=True),
    "edited": lambda chain: edit(chain, signed(chain), rehash=False),
    "edited and rehashed": lambda chain: edit(chain, signed(chain), rehash=True),
    "edited in the tail and rehashed": lambda chain: edit(chain, chain.last, rehash=True),
    "unknown field added, hash rewritten": lambda chain: add_key(chain, signed(chain)),
    "index column edited": set_sql("UPDATE audit_records SET subject = 'agt_x' WHERE seq = :s"),
    "row deleted": set_sql("DELETE FROM audit_records WHERE seq = :s"),
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_the_report_is_the_content_checks_report(chain: Chain, tamper: Callable[[Chain], None]) -> None:
    tamper(chain)
    assert verify(chain.runtime) == content_only(chain)


def test_re_encoding_without_touching_the_hash_is_no_tampering(chain: Chain) -> None:
    reencode(chain, signed(chain), rehash=False)
    assert verify(chain.runtime).ok


def test_a_re_encoded_record_with_a_rewritten_hash_is_named(chain: Chain) -> None:
    target = chain.at(signed(chain))
    reencode(chain, target.seq, rehash=True)
    report = verify(chain.runtime)
    assert (report.ok, report.bad_seq) == (False, target.seq)
    assert "modified" in (report.problem or "")


def test_only_the_unsigned_tail_is_re_serialised(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[int] = []
    original = AuditRecord.compute_hash

    def counting(record: AuditRecord) -> str:
        hashed.append(record.seq)
        return original(record)

    monkeypatch.setattr(AuditRecord, "compute_hash", counting)
    assert verify(chain.runtime).ok
    assert hashed == list(range(chain.checkpoints[1] + 1, chain.last + 1))
