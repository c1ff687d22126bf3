"""Helpers for the audit tests: filling the chain, tampering with rows, taking the store down.

Tampering goes straight to the database with SQL on an engine of the test's own,
bypassing Tessera, as someone with database access would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text

from tessera.audit.chain import VerifyReport
from tessera.audit.records import Actor, ActorType, AuditEvent, AuditRecord, canonical_json
from tessera.audit.verify import KeyMap, keys_from_jwks, verify_store
from tessera.runtime import Runtime
from tessera.server.audit import audit_jwks

TEST_ACTOR = Actor(ActorType.PERSON, "alice@example.com")
#: Far enough above any seq a test writes that shifting rows through it never collides.
SHIFT = 1_000_000


def sample_event(n: int, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "type": "test.event",
        "actor": TEST_ACTOR,
        "subject": f"agt_{n % 3}",
        "task_id": f"task-{n}",
        "reason": f"event {n}",
        "data": {"n": n},
    }
    values.update(fields)
    return AuditEvent(**values)


def fill(runtime: Runtime, count: int, start: int = 0) -> list[AuditRecord]:
    """Record ``count`` events through the writer (synchronous without its thread)."""
    return [runtime.auditor.record(sample_event(start + i)) for i in range(count)]


def public_keys(runtime: Runtime) -> KeyMap:
    """The keys a verifier gets from the public audit JWKS (retired keys included)."""
    return keys_from_jwks(audit_jwks(runtime))


def verify(runtime: Runtime, engine: Engine | None = None) -> VerifyReport:
    return verify_store(engine or runtime.engine, public_keys(runtime), runtime.issuer)


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM audit_records ORDER BY seq"))
        return [dict(row._mapping) for row in result]


def row(engine: Engine, seq: int) -> dict[str, Any]:
    found = [r for r in rows(engine) if r["seq"] == seq]
    assert found, f"no audit row at seq {seq}"
    return found[0]


def record_at(engine: Engine, seq: int) -> AuditRecord:
    found = row(engine, seq)
    return AuditRecord.from_body(json.loads(found["body"]), found["hash"])


def head(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM audit_head WHERE id = 1")).one()._mapping)


def rewrite_body(engine: Engine, seq: int, *, rehash: bool = False, **changes: Any) -> AuditRecord:
    """Edit fields inside a stored record's body; with ``rehash`` also fix its own hash column."""
    record = record_at(engine, seq)
    body = record.body()
    body.update(changes)
    forged = AuditRecord.from_body(body, record.hash)
    new_hash = forged.compute_hash() if rehash else record.hash
    sql(
        engine,
        "UPDATE audit_records SET body = :body, hash = :hash WHERE seq = :seq",
        body=canonical_json(body),
        hash=new_hash,
        seq=seq,
    )
    return AuditRecord.from_body(body, new_hash)


def insert_row(engine: Engine, record: AuditRecord, *, at_seq: int | None = None) -> None:
    sql(
        engine,
        "INSERT INTO audit_records (seq, id, ts_ms, type, actor_id, subject, task_id, token_hash, "
        "outcome, body, prev_hash, hash) VALUES (:seq, :id, :ts_ms, :type, :actor_id, :subject, "
        ":task_id, :token_hash, :outcome, :body, :prev_hash, :hash)",
        seq=record.seq if at_seq is None else at_seq,
        id=record.id,
        ts_ms=record.ts_ms,
        type=record.type,
        actor_id=record.actor.get("id"),
        subject=record.subject,
        task_id=record.task_id,
        token_hash=record.token_hash,
        outcome=record.outcome,
        body=canonical_json(record.body()),
        prev_hash=record.prev_hash,
        hash=record.hash,
    )


def shift_rows(engine: Engine, from_seq: int, by: int) -> None:
    """Renumber rows ``seq >= from_seq`` by ``by`` (through a high range, so the key never collides)."""
    sql(
        engine, "UPDATE audit_records SET seq = seq + :shift WHERE seq >= :start", shift=SHIFT, start=from_seq
    )
    sql(
        engine, "UPDATE audit_records SET seq = seq - :back WHERE seq >= :shift", back=SHIFT - by, shift=SHIFT
    )


def swap_rows(engine: Engine, a: int, b: int) -> None:
    sql(engine, "UPDATE audit_records SET seq = :tmp WHERE seq = :a", tmp=SHIFT, a=a)
    sql(engine, "UPDATE audit_records SET seq = :a WHERE seq = :b", a=a, b=b)
    sql(engine, "UPDATE audit_records SET seq = :b WHERE seq = :tmp", b=b, tmp=SHIFT)


@contextmanager
def audit_down(engine: Engine) -> Iterator[None]:
    """Make ``audit_records`` refuse every insert (a trigger), and restore it afterwards."""
    if engine.dialect.name == "sqlite":
        sql(
            engine,
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'audit down'); END",
        )
        drop = ["DROP TRIGGER IF EXISTS audit_down"]
    else:
        sql(
            engine,
            "CREATE OR REPLACE FUNCTION tessera_test_audit_down() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'audit down'; END $$",
        )
        sql(
            engine,
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_records "
            "FOR EACH ROW EXECUTE FUNCTION tessera_test_audit_down()",
        )
        drop = [
            "DROP TRIGGER IF EXISTS audit_down ON audit_records",
            "DROP FUNCTION IF EXISTS tessera_test_audit_down()",
        ]
    try:
        yield
    finally:
        for statement in drop:
            sql(engine, statement)
