"""Time passing for access requests: escalation to the next approver group, and expiry.

Run by the runtime's maintenance loop (on whichever replica gets there first; the
rows are locked while they change), with the injected clock.
"""

from __future__ import annotations

from sqlalchemy import select, update

from tessera.access.requests import AccessRequest, Status, request_from_row
from tessera.access.service import AccessService
from tessera.audit.service import RequestContext, event
from tessera.storage.database import writing
from tessera.storage.tables import access_requests

# --- time passes -----------------------------------------------------------------


def maintain(access: AccessService) -> tuple[int, int]:
    """Expire unanswered requests and escalate overdue ones; returns (expired, escalated)."""
    now = access.clock.now()
    expired: list[AccessRequest] = []
    escalated: list[AccessRequest] = []
    with writing(access.engine) as conn:
        rows = conn.execute(
            select(access_requests)
            .where(access_requests.c.status == Status.PENDING.value)
            .where((access_requests.c.expires_at <= now) | (access_requests.c.escalate_at <= now))
            .with_for_update()
            .limit(500)
        ).all()
        for row in rows:
            request = request_from_row(row)
            if now >= request.expires_at:
                access.close(conn, request, Status.EXPIRED, "no answer in time", RequestContext())
                expired.append(request)
                continue
            more = request.group_index + 1 < len(request.groups)
            index = request.group_index + 1 if more else request.group_index
            after = request.escalate_after
            again = after is not None and index + 1 < len(request.groups)
            conn.execute(
                update(access_requests)
                .where(access_requests.c.id == request.id)
                .values(group_index=index, escalate_at=now + after if again and after else None)
            )
            if more:
                access.auditor.record_in(
                    conn,
                    event(
                        "access.escalated",
                        RequestContext(),
                        subject=request.agent_id,
                        task_id=request.task_id,
                        data={"request_id": request.id, "approver_group": request.groups[index]},
                    ),
                )
                escalated.append(request)
    for request in escalated:
        access.notices.approvers("Approval escalated", access.get(request.id))
    for request in expired:
        access.notices.ping(request)
    access.grants.break_glass.prune(now)
    return len(expired), len(escalated)
