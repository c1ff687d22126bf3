"""Pruning the audit store while keeping what remains verifiable."""

from __future__ import annotations

from sqlalchemy import Engine

from tessera.audit.service import Auditor, RequestContext, event
from tessera.storage.audit import SqlAuditStore
from tessera.storage.database import writing


def prune_before(
    engine: Engine, auditor: Auditor, before_ms: int, context: RequestContext
) -> tuple[int, int]:
    """Delete records up to the newest checkpoint older than ``before_ms``.

    That checkpoint becomes the anchor: the first remaining record links to the
    hash it signed, so the rest still verifies. Returns ``(deleted, anchor_seq)``.
    The pruning itself is recorded, in the same transaction.
    """
    store = SqlAuditStore()
    with writing(engine) as conn:
        deleted = store.prune(conn, before_ms)
        head = store.head(conn)
        auditor.record_in(
            conn,
            event("audit.pruned", context, data={"deleted": deleted, "anchor_seq": head.anchor_seq}),
        )
    return deleted, head.anchor_seq
