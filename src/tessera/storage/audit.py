"""SQL store of the audit chain.

Contract:
- ``append`` runs in the caller's write transaction and holds the single
  ``audit_head`` row locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` already serialises writers) while it numbers and links the
  batch, so replicas sharing one database extend one chain, in commit order.
- Records and checkpoints are only ever deleted by ``prune``, which moves the
  anchor to a signed checkpoint so the rest still verifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update

from tessera.audit.checkpoints import Checkpoint
from tessera.audit.records import AuditEvent, AuditRecord, build_record_with_body
from tessera.storage.database import reading
from tessera.storage.tables import audit_checkpoints, audit_head, audit_records


class AuditHeadMissing(Exception):
    """The ``audit_head`` row is gone: the store was tampered with or never migrated."""


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    anchor_seq: int
    anchor_hash: str


@dataclass(frozen=True, slots=True)
class AuditFilter:
    agent: str | None = None
    type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    task_id: str | None = None
    token_hash: str | None = None
    outcome: str | None = None
    after_seq: int | None = None


def _record_from_row(row: Any) -> AuditRecord:
    return AuditRecord.from_body(json.loads(row.body), row.hash)


def _checkpoint_from_row(row: Any) -> Checkpoint:
    return Checkpoint(seq=row.seq, head_hash=row.head_hash, ts_ms=row.ts_ms, kid=row.kid, jws=row.jws)


# Built once: the writer runs these for every batch, and building a statement costs
# more than running it.
_HEAD = select(audit_head).where(audit_head.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_INSERT_RECORDS = insert(audit_records)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)


class SqlAuditStore:
    def head(self, conn: Connection, *, lock: bool = False) -> Head:
        query = _HEAD_FOR_UPDATE if lock and conn.dialect.name == "postgresql" else _HEAD
        row = conn.execute(query).first()
        if row is None:
            raise AuditHeadMissing("audit head row is missing")
        return Head(row.seq, row.hash, row.anchor_seq, row.anchor_hash)

    def append(self, conn: Connection, events: list[tuple[AuditEvent, str, int]]) -> list[AuditRecord]:
        """Chain and insert ``(event, id, ts_ms)`` triples after the current head."""
        head = self.head(conn, lock=True)
        seq, prev = head.seq, head.hash
        records: list[AuditRecord] = []
        bodies: list[str] = []
        for event, record_id, ts_ms in events:
            seq += 1
            record, body = build_record_with_body(
                event, seq=seq, record_id=record_id, ts_ms=ts_ms, prev_hash=prev
            )
            records.append(record)
            bodies.append(body)
            prev = record.hash
        conn.execute(
            _INSERT_RECORDS,
            [
                {
                    "seq": r.seq,
                    "id": r.id,
                    "ts_ms": r.ts_ms,
                    "type": r.type,
                    "actor_id": r.actor.get("id"),
                    "subject": r.subject,
                    "task_id": r.task_id,
                    "token_hash": r.token_hash,
                    "outcome": r.outcome,
                    "body": body,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }
                for r, body in zip(records, bodies, strict=True)
            ],
        )
        conn.execute(_MOVE_HEAD, {"head_seq": seq, "head_hash": prev})
        return records

    def last_checkpoint(self, conn: Connection) -> Checkpoint | None:
        row = conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)
        ).first()
        return _checkpoint_from_row(row) if row else None

    def add_checkpoint(self, conn: Connection, checkpoint: Checkpoint) -> None:
        conn.execute(insert(audit_checkpoints).values(**checkpoint.as_dict()))

    def checkpoints(
        self, conn: Connection, *, from_seq: int = 0, to_seq: int | None = None
    ) -> list[Checkpoint]:
        query = select(audit_checkpoints).where(audit_checkpoints.c.seq >= from_seq)
        if to_seq is not None:
            query = query.where(audit_checkpoints.c.seq <= to_seq)
        return [_checkpoint_from_row(r) for r in conn.execute(query.order_by(audit_checkpoints.c.seq))]

    def search(
        self, conn: Connection, where: AuditFilter, *, limit: int, newest_first: bool
    ) -> list[AuditRecord]:
        query = select(audit_records)
        if where.agent is not None:
            query = query.where(
                (audit_records.c.subject == where.agent) | (audit_records.c.actor_id == where.agent)
            )
        if where.type is not None:
            if where.type.endswith("*"):
                query = query.where(audit_records.c.type.startswith(where.type[:-1], autoescape=True))
            else:
                query = query.where(audit_records.c.type == where.type)
        if where.since_ms is not None:
            query = query.where(audit_records.c.ts_ms >= where.since_ms)
        if where.until_ms is not None:
            query = query.where(audit_records.c.ts_ms < where.until_ms)
        if where.task_id is not None:
            query = query.where(audit_records.c.task_id == where.task_id)
        if where.token_hash is not None:
            query = query.where(audit_records.c.token_hash == where.token_hash)
        if where.outcome is not None:
            query = query.where(audit_records.c.outcome == where.outcome)
        if where.after_seq is not None:
            query = query.where(audit_records.c.seq > where.after_seq)
        order = audit_records.c.seq.desc() if newest_first else audit_records.c.seq
        rows = conn.execute(query.order_by(order).limit(limit)).all()
        return [_record_from_row(r) for r in rows]

    def iter_records(
        self, engine: Engine, *, from_seq: int, to_seq: int | None = None, chunk: int = 5000
    ) -> Iterator[tuple[AuditRecord, Mapping[Any, Any]]]:
        """Records in ``seq`` order with their stored columns (``body`` included), read in chunks."""
        for row in self.iter_rows(engine, from_seq=from_seq, to_seq=to_seq, chunk=chunk):
            yield AuditRecord.from_body(json.loads(row["body"]), row["hash"]), row

    def iter_rows(
        self, engine: Engine, *, from_seq: int, to_seq: int | None = None, chunk: int = 5000
    ) -> Iterator[Mapping[Any, Any]]:
        """The stored rows in ``seq`` order, read in chunks."""
        position = from_seq - 1
        while True:
            with reading(engine) as conn:
                query = select(audit_records).where(audit_records.c.seq > position)
                if to_seq is not None:
                    query = query.where(audit_records.c.seq <= to_seq)
                rows = conn.execute(query.order_by(audit_records.c.seq).limit(chunk)).all()
            if not rows:
                return
            for row in rows:
                yield row._mapping
            position = rows[-1].seq

    def prune(self, conn: Connection, before_ms: int) -> int:
        """Delete records up to the newest checkpoint older than ``before_ms``; returns how many."""
        anchor_row = conn.execute(
            select(audit_checkpoints)
            .where(audit_checkpoints.c.ts_ms < before_ms)
            .order_by(audit_checkpoints.c.seq.desc())
            .limit(1)
        ).first()
        if anchor_row is None:
            return 0
        anchor = _checkpoint_from_row(anchor_row)
        head = self.head(conn, lock=True)
        if anchor.seq <= head.anchor_seq:
            return 0
        deleted = conn.execute(delete(audit_records).where(audit_records.c.seq <= anchor.seq)).rowcount
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq < anchor.seq))
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(anchor_seq=anchor.seq, anchor_hash=anchor.head_hash)
        )
        return int(deleted)

    def count(self, conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(audit_records)).scalar_one())
