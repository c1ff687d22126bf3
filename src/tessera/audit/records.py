"""The audit record, schema version 1, and its canonical form.

A record's hash is SHA-256 over the canonical JSON (sorted keys, no spaces,
UTF-8) of every field but ``hash``; ``prev_hash`` ties it to the record before.
Secrets never appear: tokens and assertions are carried as ``token_hash``, an
HMAC-SHA256 under a per-install key, so records about one token still correlate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
MAX_REASON = 500
MAX_DATA_BYTES = 8192


class ActorType(StrEnum):
    AGENT = "agent"
    PERSON = "person"
    ADMIN = "admin"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What a caller records; the writer turns it into a chained :class:`AuditRecord`."""

    type: str
    actor: Actor
    subject: str | None = None
    task_id: str | None = None
    token_hash: str | None = None
    delegation: tuple[str, ...] = ()
    outcome: str | None = None
    policies: tuple[str, ...] = ()
    policy_version: str | None = None
    decision_id: str | None = None
    ip: str | None = None
    zone: str | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    v: int
    seq: int
    id: str
    ts_ms: int
    type: str
    actor: dict[str, str | None]
    subject: str | None
    task_id: str | None
    token_hash: str | None
    delegation: list[str]
    decision: dict[str, Any] | None
    network: dict[str, str | None]
    reason: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but ``hash``: what the hash covers (a deep copy)."""
        content = asdict(self)
        content.pop("hash")
        return content

    def canonical_body(self) -> str:
        """The canonical JSON of :meth:`body`: what is stored, and what the hash covers.

        Read field by field rather than through ``asdict``, whose deep copy cost ten
        times the rest: the values are plain JSON already, so the text is the same.
        """
        return canonical_json({name: getattr(self, name) for name in _BODY_FIELDS})

    def compute_hash(self) -> str:
        return _sha256(self.canonical_body())

    def sealed(self) -> AuditRecord:
        return replace(self, hash=self.compute_hash())

    def as_dict(self) -> dict[str, Any]:
        content = asdict(self)
        content["time"] = iso_ms(self.ts_ms)
        return content

    @property
    def outcome(self) -> str | None:
        return None if self.decision is None else self.decision.get("outcome")

    @classmethod
    def from_body(cls, body: dict[str, Any], record_hash: str) -> AuditRecord:
        if body.keys() == BODY_KEYS:  # a stored body holds exactly these
            return cls(**body, hash=record_hash)
        known = {k: body[k] for k in cls.__dataclass_fields__ if k in body and k != "hash"}
        return cls(**known, hash=record_hash)


_BODY_FIELDS = tuple(f.name for f in fields(AuditRecord) if f.name != "hash")
#: The keys of a stored body: every field but ``hash``.
BODY_KEYS = frozenset(_BODY_FIELDS)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_record(event: AuditEvent, *, seq: int, record_id: str, ts_ms: int, prev_hash: str) -> AuditRecord:
    return build_record_with_body(event, seq=seq, record_id=record_id, ts_ms=ts_ms, prev_hash=prev_hash)[0]


def build_record_with_body(
    event: AuditEvent, *, seq: int, record_id: str, ts_ms: int, prev_hash: str
) -> tuple[AuditRecord, str]:
    """The sealed record and its canonical body, serialised once for both the hash and the store."""
    decision: dict[str, Any] | None = None
    if event.outcome is not None:
        decision = {
            "outcome": event.outcome,
            "policies": list(event.policies),
            "policy_version": event.policy_version,
            "decision_id": event.decision_id,
        }
    data = dict(event.data)
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "seq": seq,
        "id": record_id,
        "ts_ms": ts_ms,
        "type": event.type,
        "actor": {"type": event.actor.type.value, "id": event.actor.id},
        "subject": event.subject,
        "task_id": event.task_id,
        "token_hash": event.token_hash,
        "delegation": list(event.delegation),
        "decision": decision,
        "network": {"ip": event.ip, "zone": event.zone},
        "reason": (event.reason or None) and event.reason[:MAX_REASON],
        "data": data,
        "prev_hash": prev_hash,
    }
    text = canonical_json(body)
    # The data's text is part of the body's: only a long body can hold data over the limit.
    if len(text) > MAX_DATA_BYTES and len(canonical_json(data)) > MAX_DATA_BYTES:
        body["data"] = {"truncated": True}
        text = canonical_json(body)
    return AuditRecord(**body, hash=_sha256(text)), text


class SecretHasher:
    """HMAC-SHA256 under the per-install audit key: correlates secrets without storing them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()
