"""Records, the hash chain and signed checkpoints, without a database."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from joserfc.jwk import ECKey

from tessera.audit.chain import verify_chain
from tessera.audit.checkpoints import Checkpoint, sign_checkpoint
from tessera.audit.records import (
    GENESIS_HASH,
    MAX_DATA_BYTES,
    MAX_REASON,
    Actor,
    ActorType,
    AuditEvent,
    AuditRecord,
    SecretHasher,
    build_record,
    canonical_json,
)
from tessera.audit.verify import KeyMap
from tests.unit.audit.helpers import sample_event
from tests.unit.helpers import sign_jwt

ISSUER = "https://tessera.example"
T0 = 1_800_000_000_000


def chain(count: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = GENESIS_HASH
    for n in range(1, count + 1):
        record = build_record(sample_event(n), seq=n, record_id=f"aud_{n}", ts_ms=T0 + n, prev_hash=prev)
        records.append(record)
        prev = record.hash
    return records


def new_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def keymap(*keys: ECKey) -> KeyMap:
    return {str(k.kid): (ECKey.import_key(k.as_dict(private=False)), ("ES256",)) for k in keys}


def checkpoint(key: ECKey, record: AuditRecord, issuer: str = ISSUER) -> Checkpoint:
    return sign_checkpoint(
        key, str(key.kid), "ES256", issuer=issuer, seq=record.seq, head_hash=record.hash, ts_ms=T0 + 10_000
    )


@pytest.fixture
def key() -> ECKey:
    return new_key("cp-1")


@pytest.fixture
def records() -> list[AuditRecord]:
    return chain(10)


@pytest.fixture
def checkpoints(key: ECKey, records: list[AuditRecord]) -> list[Checkpoint]:
    return [checkpoint(key, records[4]), checkpoint(key, records[9])]


def run(records: list[AuditRecord], checkpoints: list[Checkpoint], keys: KeyMap) -> Any:
    return verify_chain(
        records, checkpoints, keys=keys, anchor_seq=0, anchor_hash=GENESIS_HASH, issuer=ISSUER
    )


# --- records and canonical hashing ---------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == '{"a":{"c":"é","d":[1,2]},"b":1}'
    with pytest.raises(ValueError, match="Out of range"):
        canonical_json({"x": float("nan")})


def test_record_hash_is_sha256_of_the_canonical_body_and_stable() -> None:
    record = chain(1)[0]
    expected = hashlib.sha256(canonical_json(record.body()).encode()).hexdigest()
    assert record.hash == expected
    assert "hash" not in record.body()
    # Same input, same hash; the hash does not depend on dict insertion order.
    again = build_record(sample_event(1), seq=1, record_id="aud_1", ts_ms=T0 + 1, prev_hash=GENESIS_HASH)
    assert again.hash == record.hash
    reordered = AuditRecord.from_body(dict(reversed(list(record.body().items()))), record.hash)
    assert reordered.compute_hash() == record.hash
    # Round trip through the stored form keeps the hash.
    assert AuditRecord.from_body(json.loads(canonical_json(record.body())), record.hash) == record


def test_a_pinned_record_hash_never_changes() -> None:
    """Schema v1's canonical form is a contract: exports made today must verify tomorrow."""
    event = AuditEvent(
        type="token.issued",
        actor=Actor(ActorType.AGENT, "agt_1"),
        subject="agt_1",
        task_id="T-1",
        token_hash="ab" * 32,
        delegation=("user:alice",),
        reason="ok",
        data={"scope": "a b"},
    )
    record = build_record(event, seq=1, record_id="aud_1", ts_ms=T0, prev_hash=GENESIS_HASH)
    assert canonical_json(record.body()) == (
        '{"actor":{"id":"agt_1","type":"agent"},"data":{"scope":"a b"},"decision":null,'
        '"delegation":["user:alice"],"id":"aud_1","network":{"ip":null,"zone":null},'
        '"prev_hash":"' + GENESIS_HASH + '","reason":"ok","seq":1,"subject":"agt_1","task_id":"T-1",'
        '"token_hash":"' + "ab" * 32 + '","ts_ms":1800000000000,"type":"token.issued","v":1}'
    )
    assert record.hash == "9aa920587f66367c644fed9d47d046c6818a3685fa08487d88393b59a97bfa14"


def test_every_field_is_covered_by_the_hash(records: list[AuditRecord]) -> None:
    record = records[0]
    changes: dict[str, Any] = {
        "v": 2,
        "seq": 2,
        "id": "aud_x",
        "ts_ms": 1,
        "type": "other",
        "actor": {"type": "admin", "id": None},
        "subject": "agt_x",
        "task_id": "t",
        "token_hash": "0" * 64,
        "delegation": ["x"],
        "decision": {"outcome": "deny"},
        "network": {"ip": "10.0.0.1", "zone": None},
        "reason": "edited",
        "data": {"n": 99},
        "prev_hash": "1" * 64,
    }
    assert set(changes) == set(record.body())
    for name, value in changes.items():
        assert dataclasses.replace(record, **{name: value}).compute_hash() != record.hash, name


def test_decision_reason_and_data_are_bounded() -> None:
    event = AuditEvent(
        type="decision",
        actor=Actor(ActorType.AGENT, "agt_1"),
        outcome="deny",
        policies=("p1", "p2"),
        policy_version="v7",
        decision_id="dec_1",
        reason="r" * (MAX_REASON + 50),
        data={"blob": "x" * (MAX_DATA_BYTES + 1)},
    )
    record = build_record(event, seq=1, record_id="aud_1", ts_ms=T0, prev_hash=GENESIS_HASH)
    assert record.decision == {
        "outcome": "deny",
        "policies": ["p1", "p2"],
        "policy_version": "v7",
        "decision_id": "dec_1",
    }
    assert record.outcome == "deny"
    assert record.reason is not None
    assert len(record.reason) == MAX_REASON
    assert record.data == {"truncated": True}


def test_secret_hasher_is_keyed_hmac() -> None:
    a, b = SecretHasher(b"k" * 32), SecretHasher(b"j" * 32)
    assert a("jti-1") == a("jti-1")
    assert a("jti-1") != a("jti-2")
    assert a("jti-1") != b("jti-1")
    assert a("jti-1") != hashlib.sha256(b"jti-1").hexdigest()
    assert len(a("jti-1")) == 64


# --- the chain -----------------------------------------------------------------------------------


def test_an_untouched_chain_verifies(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    report = run(records, checkpoints, keymap(key))
    assert report.ok, report.problem
    assert (report.records, report.first_seq, report.last_seq) == (10, 1, 10)
    assert report.checkpoints_verified == 2
    assert report.unsigned_tail == 0
    assert run(records + chain(11)[10:], checkpoints, keymap(key)).unsigned_tail == 1


def test_a_modified_record_is_named(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    records[3] = dataclasses.replace(records[3], reason="nothing happened")
    report = run(records, checkpoints, keymap(key))
    assert not report.ok
    assert (report.bad_seq, report.bad_id) == (4, "aud_4")
    assert "modified" in (report.problem or "")


def test_a_modified_and_rehashed_record_breaks_the_next_link(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    records[3] = dataclasses.replace(records[3], reason="nothing happened").sealed()
    report = run(records, checkpoints, keymap(key))
    assert (report.ok, report.bad_seq, report.bad_id) == (False, 5, "aud_5")
    assert "does not link" in (report.problem or "")


def test_a_rechained_suffix_is_caught_by_its_checkpoint(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    """Someone who recomputes every hash after an edit still cannot match the signed head."""
    prev = records[1].hash
    for i in range(2, 10):
        body = records[i].body()
        body["prev_hash"] = prev
        if i == 2:
            body["reason"] = "rewritten"
        records[i] = AuditRecord.from_body(body, "").sealed()
        prev = records[i].hash
    report = run(records, checkpoints, keymap(key))
    assert (report.ok, report.bad_seq, report.bad_id) == (False, 5, "aud_5")
    assert "signed checkpoint" in (report.problem or "")


def test_a_deleted_record_is_named(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    del records[6]
    report = run(records, checkpoints, keymap(key))
    assert (report.ok, report.bad_seq, report.bad_id) == (False, 8, "aud_8")
    assert "missing records" in (report.problem or "")


def test_an_inserted_record_is_named(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    forged = build_record(
        sample_event(99), seq=7, record_id="aud_forged", ts_ms=T0 + 7, prev_hash=records[5].hash
    )
    records.insert(6, forged)
    report = run(records, checkpoints, keymap(key))
    # The forgery links to its predecessor; the chain breaks at the genuine record it displaced.
    assert (report.ok, report.bad_seq, report.bad_id) == (False, 7, "aud_7")
    assert "repeated" in (report.problem or "")


def test_reordered_records_are_named(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    records[2], records[3] = records[3], records[2]
    report = run(records, checkpoints, keymap(key))
    assert (report.ok, report.bad_seq, report.bad_id) == (False, 4, "aud_4")


def test_a_deleted_tail_past_a_checkpoint_is_caught(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    report = run(records[:7], checkpoints, keymap(key))
    assert (report.ok, report.bad_seq, report.bad_id) == (False, 8, None)
    assert "deleted tail" in (report.problem or "")
    # Without a checkpoint past the cut, nothing in the records themselves can show it.
    assert run(records[:7], checkpoints[:1], keymap(key)).ok


def test_verification_starts_at_an_anchor(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    ok = verify_chain(records[5:], checkpoints, keys=keymap(key), anchor_seq=5, anchor_hash=records[4].hash)
    assert ok.ok, ok.problem
    assert ok.first_seq == 6
    wrong = verify_chain(records[5:], checkpoints, keys=keymap(key), anchor_seq=5, anchor_hash="f" * 64)
    assert (wrong.ok, wrong.bad_seq) == (False, 5)
    assert "anchor" in (wrong.problem or "")


# --- checkpoints ---------------------------------------------------------------------------------


def test_a_checkpoint_signed_by_an_unknown_key_fails(records: list[AuditRecord], key: ECKey) -> None:
    stranger = new_key("cp-1")  # same kid, different key: a forgery
    forged = [checkpoint(key, records[4]), checkpoint(stranger, records[9])]
    report = run(records, forged, keymap(key))
    assert (report.ok, report.bad_seq) == (False, 10)
    assert "signature" in (report.problem or "")
    unknown = [checkpoint(new_key("cp-other"), records[9])]
    report = run(records, unknown, keymap(key))
    assert (report.ok, report.bad_seq) == (False, 10)
    assert "unknown key" in (report.problem or "")


def test_a_checkpoint_with_a_forged_signature_fails(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint]
) -> None:
    header, payload, signature = checkpoints[1].jws.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = dataclasses.replace(checkpoints[1], jws=f"{header}.{payload}.{flipped}")
    report = run(records, [checkpoints[0], forged], keymap(key))
    assert (report.ok, report.bad_seq) == (False, 10)


@pytest.mark.parametrize(
    "change",
    [{"seq": 9}, {"head_hash": "e" * 64}, {"ts_ms": T0}],
    ids=["seq", "head_hash", "ts_ms"],
)
def test_checkpoint_fields_edited_outside_the_signature_fail(
    key: ECKey, records: list[AuditRecord], checkpoints: list[Checkpoint], change: dict[str, Any]
) -> None:
    edited = dataclasses.replace(checkpoints[0], **change)
    report = run(records, [edited, checkpoints[1]], keymap(key))
    assert not report.ok
    assert "differ" in (report.problem or "")


@pytest.mark.parametrize(
    ("header", "claims", "problem"),
    [
        ({"typ": "JWT"}, {}, "not an audit checkpoint"),
        ({}, {"iss": "https://evil.example"}, "issuer"),
        ({}, {"head": "e" * 64}, "differ"),
        ({"alg": "none"}, {}, ""),
    ],
    ids=["typ", "issuer", "signed-other-head", "alg-none"],
)
def test_checkpoint_jws_is_checked_strictly(
    key: ECKey, records: list[AuditRecord], header: dict[str, Any], claims: dict[str, Any], problem: str
) -> None:
    target = records[9]
    jws = sign_jwt(
        {"alg": "ES256", "kid": "cp-1", "typ": "tessera-audit-checkpoint+jwt", **header},
        {"iss": ISSUER, "seq": target.seq, "head": target.hash, "ts_ms": T0, **claims},
        key,
    )
    report = run(records, [Checkpoint(target.seq, target.hash, T0, "cp-1", jws)], keymap(key))
    assert (report.ok, report.bad_seq) == (False, 10)
    assert problem in (report.problem or "")
