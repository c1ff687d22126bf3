"""The hash input is built field by field, without ``asdict``; it must be the very same text.

``AuditRecord.canonical_body`` (what is stored and hashed) skips ``asdict``'s deep
copy. These cases pin it to ``canonical_json(record.body())``, the definition, for
records of every shape: built from events, read back from stored bodies, with
unicode, nested data, tuples and absent fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from tessera.audit.records import (
    GENESIS_HASH,
    Actor,
    ActorType,
    AuditEvent,
    AuditRecord,
    build_record,
    build_record_with_body,
    canonical_json,
)

EVENTS = [
    AuditEvent(type="test.minimal", actor=Actor(ActorType.SYSTEM)),
    AuditEvent(
        type="decision",
        actor=Actor(ActorType.AGENT, "agt_1"),
        subject="agt_1",
        task_id="T-1",
        outcome="permit",
        policies=("b-policy", "a-policy"),
        policy_version="v1",
        decision_id="dec_1",
        ip="10.1.2.3",
        zone="corporate",
        data={"resource": "Resource::x", "errors": [], "nested": {"z": 1, "a": [True, None, 2.5]}},
    ),
    AuditEvent(
        type="token.issued",
        actor=Actor(ActorType.PERSON, "zoë@example.com"),
        token_hash="ab" * 32,
        delegation=("user:ünïcode", "agent:é"),
        reason="naïve ☃ reason\nwith a newline",
        data={"emoji": "🔐", "quote": 'say "hi"', "ints": [1, -2, 2**62]},
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_canonical_body_is_the_canonical_json_of_body(event: AuditEvent) -> None:
    record = build_record(event, seq=7, record_id="aud_7", ts_ms=1_800_000_000_123, prev_hash=GENESIS_HASH)
    assert record.canonical_body() == canonical_json(record.body())
    assert record.hash == hashlib.sha256(canonical_json(record.body()).encode()).hexdigest()
    assert record.compute_hash() == record.hash
    sealed, body = build_record_with_body(
        event, seq=7, record_id="aud_7", ts_ms=1_800_000_000_123, prev_hash=GENESIS_HASH
    )
    assert (sealed, body) == (record, record.canonical_body())


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_a_record_read_back_from_its_stored_body_hashes_the_same(event: AuditEvent) -> None:
    record = build_record(event, seq=1, record_id="aud_1", ts_ms=1, prev_hash=GENESIS_HASH)
    again = AuditRecord.from_body(json.loads(record.canonical_body()), record.hash)
    assert again.canonical_body() == record.canonical_body()
    assert again.compute_hash() == record.hash


def test_tuples_and_edits_hash_as_before() -> None:
    record = build_record(EVENTS[1], seq=1, record_id="aud_1", ts_ms=1, prev_hash=GENESIS_HASH)
    with_tuple = dataclasses.replace(record, delegation=("a", "b"))  # type: ignore[arg-type]  # as a caller may
    assert with_tuple.canonical_body() == canonical_json(with_tuple.body())
    edited = dataclasses.replace(record, reason="edited")
    assert edited.compute_hash() != record.hash
    assert edited.compute_hash() == hashlib.sha256(canonical_json(edited.body()).encode()).hexdigest()
