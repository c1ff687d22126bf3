"""Verifying the live store, exporting it, verifying an export offline, and pruning.

An export is JSON Lines: a header line, then ``{"record": …}`` lines in chain
order, then ``{"checkpoint": …}`` lines. It always starts right after a signed
checkpoint (or the genesis) and ends at one, widening the requested range if
needed, so that a machine with only the server's public JWKS can verify it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import IO, Any

from sqlalchemy import Engine, select

from tessera.audit.chain import ChainRecord, VerifyReport, verify_chain
from tessera.audit.checkpoints import Checkpoint
from tessera.audit.records import BODY_KEYS, GENESIS_HASH, AuditRecord, iso_ms
from tessera.identity.keys import PublicKey, allowed_algorithms, import_public_key
from tessera.storage.audit import SqlAuditStore
from tessera.storage.database import reading
from tessera.storage.tables import audit_records

EXPORT_TYPE = "tessera.audit.export"
EXPORT_VERSION = 1
KeyMap = dict[str, tuple[PublicKey, tuple[str, ...]]]
_INDEXED = ("seq", "id", "ts_ms", "type", "subject", "task_id", "token_hash", "prev_hash")


class ExportFormatError(Exception):
    pass


def keys_from_jwks(jwks: dict[str, Any]) -> KeyMap:
    keys: KeyMap = {}
    for jwk in jwks.get("keys", []):
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and allowed_algorithms(jwk):
            algs = (jwk["alg"],) if jwk.get("alg") in allowed_algorithms(jwk) else allowed_algorithms(jwk)
            keys[jwk["kid"]] = (
                import_public_key({k: v for k, v in jwk.items() if not k.startswith("x-")}),
                algs,
            )
    return keys


_ROW_VALUES = itemgetter(*_INDEXED, "actor_id", "outcome", "hash")
_RECORD_VALUES = attrgetter(*_INDEXED)


def _indexed_mismatch(record: AuditRecord, row: Mapping[Any, Any]) -> str | None:
    if _ROW_VALUES(row) == (*_RECORD_VALUES(record), record.actor.get("id"), record.outcome, record.hash):
        return None  # the common case, in one comparison; otherwise name the column
    for column in _INDEXED:
        if row.get(column) != getattr(record, column):
            return column
    if row.get("actor_id") != record.actor.get("id") or row.get("outcome") != record.outcome:
        return "actor_id/outcome"
    if row.get("hash") != record.hash:
        return "hash"
    return None


class _StoredRecord:
    """A stored row as the chain walk reads it, its body parsed but no ``AuditRecord`` built.

    Used only for a row whose body holds exactly a record's fields and whose index
    columns say what its body says, so it reads as ``AuditRecord.from_body`` would.
    """

    __slots__ = ("_body", "hash", "id", "prev_hash", "seq")

    def __init__(self, body: dict[str, Any], record_hash: str) -> None:
        self._body = body
        self.seq: int = body["seq"]
        self.id: str = body["id"]
        self.prev_hash: str = body["prev_hash"]
        self.hash = record_hash

    def compute_hash(self) -> str:
        return AuditRecord.from_body(self._body, self.hash).compute_hash()


def _stored_record(row: Mapping[Any, Any], body: Any) -> _StoredRecord | None:
    """The row as a ``_StoredRecord`` if its columns match its body exactly, else None."""
    if not isinstance(body, dict) or body.keys() != BODY_KEYS:
        return None
    actor, decision = body["actor"], body["decision"]
    if not isinstance(actor, dict) or not (decision is None or isinstance(decision, dict)):
        return None
    said = (
        *(body[column] for column in _INDEXED),
        actor.get("id"),
        None if decision is None else decision.get("outcome"),
    )
    return _StoredRecord(body, row["hash"]) if _ROW_VALUES(row)[:-1] == said else None


def verify_store(engine: Engine, keys: KeyMap, issuer: str | None) -> VerifyReport:
    """Verify every record from the anchor to the head, with its checkpoints and index columns.

    Safe on a live store: records appended while it walks are verified too, and
    only rows beyond the head as it stands at the end count as inserted.

    A record's hash is the SHA-256 of its canonical body, which is what the
    ``body`` column holds; so up to the last signed checkpoint the stored bytes
    are hashed as they are, without parsing and re-serialising them. Bytes that
    differ from the canonical body can match the hash column only if it was
    rewritten too, and then the chain breaks at or before the next signed
    checkpoint (unless every later link was rewritten before the server signed
    it, which no check of the content sees either). If this first walk finds any
    problem, a second one recomputes every hash from the content, so the report
    names the first bad record exactly as the content check alone does. Records
    past the last checkpoint, which no signature vouches for, always get the
    content check.
    """
    report = _verify_store(engine, keys, issuer, stored_bytes=True)
    return report if report.ok else _verify_store(engine, keys, issuer, stored_bytes=False)


def _verify_store(engine: Engine, keys: KeyMap, issuer: str | None, *, stored_bytes: bool) -> VerifyReport:
    store = SqlAuditStore()
    with reading(engine) as conn:
        head = store.head(conn)
        checkpoints = store.checkpoints(conn, from_seq=head.anchor_seq)
    signed_up_to = max((c.seq for c in checkpoints), default=0) if stored_bytes else 0
    mismatch: list[tuple[ChainRecord, str, int]] = []
    past_head: list[ChainRecord] = []
    #: (seq, the stored body hashes to the hash column) of the record last handed out.
    stored_ok = (0, False)

    def records() -> Iterator[ChainRecord]:
        nonlocal stored_ok
        for row in store.iter_rows(engine, from_seq=head.anchor_seq + 1):
            body = json.loads(row["body"])
            record: ChainRecord | None = _stored_record(row, body) if stored_bytes else None
            if record is None:
                full = AuditRecord.from_body(body, row["hash"])
                column = _indexed_mismatch(full, row)
                if column is not None:
                    mismatch.append((full, column, row["seq"]))
                    return
                record = full
            if record.seq > head.seq:
                past_head.append(record)
            if record.seq <= signed_up_to:
                stored = hashlib.sha256(row["body"].encode("utf-8")).hexdigest()
                stored_ok = (record.seq, stored == record.hash)
            yield record

    report = verify_chain(
        records(),
        checkpoints,
        keys=keys,
        anchor_seq=head.anchor_seq,
        anchor_hash=head.anchor_hash,
        issuer=issuer,
        hash_checked=lambda record: stored_ok == (record.seq, True),
    )
    if mismatch:  # the walk stopped there, so anything verify_chain said after it is a consequence
        record, column, stored_at = mismatch[0]
        if column == "seq":
            return report.fail(f"record seq {record.seq} is stored at seq {stored_at} (moved)", record)
        return report.fail(f"record seq {record.seq} column '{column}' was edited", record)
    if not report.ok:
        return report
    last = report.last_seq if report.last_seq is not None else head.anchor_seq
    if last < head.seq:
        return report.fail(
            f"the chain head is seq {head.seq} but the records end at seq {last} (records deleted)",
            seq=last + 1,
        )
    if past_head:
        with reading(engine) as conn:
            now_head = store.head(conn)
        forged = [r for r in past_head if r.seq > now_head.seq]
        if forged:
            return report.fail(
                f"record seq {forged[0].seq} lies beyond the chain head at seq {now_head.seq} (inserted)",
                forged[0],
            )
    return report


@dataclass(frozen=True, slots=True)
class ExportRange:
    since_ms: int | None = None
    until_ms: int | None = None


def _bounds(engine: Engine, wanted: ExportRange, upto_seq: int | None) -> tuple[int, int, int, str] | None:
    """Seq bounds ``(first, last)`` widened to checkpoints, plus the anchor ``(seq, hash)``."""
    store = SqlAuditStore()
    with reading(engine) as conn:
        head = store.head(conn)
        query = select(audit_records.c.seq).where(audit_records.c.seq > head.anchor_seq)
        if upto_seq is not None:
            query = query.where(audit_records.c.seq <= upto_seq)
        if wanted.since_ms is not None:
            query = query.where(audit_records.c.ts_ms >= wanted.since_ms)
        if wanted.until_ms is not None:
            query = query.where(audit_records.c.ts_ms < wanted.until_ms)
        first = conn.execute(query.order_by(audit_records.c.seq).limit(1)).scalar()
        last = conn.execute(query.order_by(audit_records.c.seq.desc()).limit(1)).scalar()
        if first is None or last is None:
            return None
        checkpoints = store.checkpoints(conn, from_seq=head.anchor_seq)
    before = [c for c in checkpoints if c.seq < first]
    anchor_seq, anchor_hash = (
        (before[-1].seq, before[-1].head_hash) if before else (head.anchor_seq, head.anchor_hash)
    )
    after = [c.seq for c in checkpoints if c.seq >= last]
    end = after[0] if after else last
    return anchor_seq + 1, end, anchor_seq, anchor_hash


def export_lines(
    engine: Engine, *, issuer: str, wanted: ExportRange, now_ms: int, upto_seq: int | None = None
) -> Iterator[str]:
    """The export; ``upto_seq`` (the checkpoint just signed) keeps later records out, so it ends signed."""
    store = SqlAuditStore()
    bounds = _bounds(engine, wanted, upto_seq)
    if bounds is None:
        with reading(engine) as conn:
            head = store.head(conn)
        first, last, anchor_seq, anchor_hash = head.seq + 1, head.seq, head.seq, head.hash
    else:
        first, last, anchor_seq, anchor_hash = bounds
    header = {
        "type": EXPORT_TYPE,
        "version": EXPORT_VERSION,
        "issuer": issuer,
        "exported_at": iso_ms(now_ms),
        "anchor": {"seq": anchor_seq, "hash": anchor_hash},
        "first_seq": first,
        "last_seq": last,
        "requested": {
            "since": iso_ms(wanted.since_ms) if wanted.since_ms is not None else None,
            "until": iso_ms(wanted.until_ms) if wanted.until_ms is not None else None,
        },
    }
    yield json.dumps(header, sort_keys=True)
    if last >= first:
        for record, _row in store.iter_records(engine, from_seq=first, to_seq=last):
            yield json.dumps({"record": record.as_dict()}, sort_keys=True, ensure_ascii=False)
    with reading(engine) as conn:
        checkpoints = store.checkpoints(conn, from_seq=anchor_seq, to_seq=max(last, anchor_seq))
    for checkpoint in checkpoints:
        yield json.dumps({"checkpoint": checkpoint.as_dict()}, sort_keys=True)


def _record_from_export(data: dict[str, Any]) -> AuditRecord:
    content = dict(data)
    content.pop("time", None)
    record_hash = content.pop("hash", "")
    try:
        return AuditRecord.from_body(content, str(record_hash))
    except TypeError as exc:
        raise ExportFormatError(f"malformed record: {exc}") from exc


def verify_export(lines: Iterable[str], keys: KeyMap) -> VerifyReport:
    """Verify an export with only the server's public keys (offline)."""
    iterator = iter(lines)
    try:
        header = json.loads(next(iterator))
    except (StopIteration, ValueError) as exc:
        raise ExportFormatError("export is empty or its header is not json") from exc
    if not isinstance(header, dict) or header.get("type") != EXPORT_TYPE:
        raise ExportFormatError("not a tessera audit export")
    records: list[AuditRecord] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(iterator, start=2):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ExportFormatError(f"line {number} is not json") from exc
        if isinstance(item, dict) and isinstance(item.get("record"), dict):
            records.append(_record_from_export(item["record"]))
        elif isinstance(item, dict) and isinstance(item.get("checkpoint"), dict):
            try:
                checkpoints.append(Checkpoint(**item["checkpoint"]))
            except TypeError as exc:
                raise ExportFormatError(f"line {number} is a malformed checkpoint") from exc
        else:
            raise ExportFormatError(f"line {number} is neither a record nor a checkpoint")
    anchor = header.get("anchor") or {}
    anchor_seq, anchor_hash = int(anchor.get("seq", 0)), str(anchor.get("hash", GENESIS_HASH))
    report = verify_chain(
        records,
        checkpoints,
        keys=keys,
        anchor_seq=anchor_seq,
        anchor_hash=anchor_hash,
        issuer=header.get("issuer"),
    )
    if report.ok and header.get("last_seq") is not None and records and records[-1].seq != header["last_seq"]:
        return report.fail(
            "the export ends before its declared last record (records deleted)", seq=records[-1].seq
        )
    return report


def read_lines(handle: IO[str]) -> Iterator[str]:
    for line in handle:
        yield line.rstrip("\n")
