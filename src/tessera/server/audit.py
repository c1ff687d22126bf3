"""The audit API (``/admin/v1/audit``): search and tail, verify, export, prune, keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from tessera.audit.chain import VerifyReport
from tessera.audit.maintenance import prune_before
from tessera.audit.queries import parse_time_ms, token_id
from tessera.audit.verify import ExportRange, export_lines, keys_from_jwks, verify_store
from tessera.errors import ValidationFailed
from tessera.runtime import Runtime
from tessera.server.admin import Admin, AuditReader
from tessera.server.oauth import runtime_of
from tessera.server.schemas import Strict
from tessera.storage.audit import AuditFilter, AuditHeadMissing, SqlAuditStore
from tessera.storage.database import reading

router = APIRouter(prefix="/admin/v1/audit")
public = APIRouter()
MAX_LIMIT = 1000


class PruneBody(Strict):
    before: str


def audit_jwks(runtime: Runtime) -> dict[str, Any]:
    """Every signing key's public half, retired ones included, so old checkpoints still verify."""
    keys = []
    now = runtime.clock.now()
    ring = runtime.keys.load()
    for key in ring.keys:
        jwk = dict(key.public_jwk)
        jwk["x-tessera-state"] = ring.state(key, now)
        keys.append(jwk)
    return {"keys": keys}


@router.get("/records")
def search_records(
    call: AuditReader,
    agent: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    task: Annotated[str | None, Query(max_length=128)] = None,
    token: Annotated[str | None, Query(max_length=8192)] = None,
    decision: Annotated[str | None, Query(max_length=32)] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
) -> dict[str, Any]:
    runtime = call.runtime
    now = runtime.clock.now()
    where = AuditFilter(
        agent=agent,
        type=type,
        since_ms=parse_time_ms(since, now),
        until_ms=parse_time_ms(until, now),
        task_id=task,
        token_hash=runtime.auditor.token_hash(token_id(token)) if token else None,
        outcome=decision,
        after_seq=after,
    )
    with reading(runtime.engine) as conn:
        records = SqlAuditStore().search(conn, where, limit=limit, newest_first=order == "desc")
    return {"records": [r.as_dict() for r in records]}


@router.get("/verify")
async def verify(call: AuditReader) -> dict[str, Any]:
    runtime = call.runtime
    keys = keys_from_jwks(audit_jwks(runtime))
    try:
        report = await run_in_threadpool(verify_store, runtime.engine, keys, runtime.issuer)
    except AuditHeadMissing:
        report = VerifyReport().fail("the audit chain head row is missing (tampered or never migrated)")
    return {
        "ok": report.ok,
        "records": report.records,
        "checkpoints_verified": report.checkpoints_verified,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "unsigned_tail": report.unsigned_tail,
        "problem": report.problem,
        "bad_seq": report.bad_seq,
        "bad_id": report.bad_id,
    }


@router.get("/export")
async def export(
    call: AuditReader,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    format: Annotated[str, Query(pattern="^jsonl$")] = "jsonl",
) -> StreamingResponse:
    runtime = call.runtime
    now = runtime.clock.now()
    wanted = ExportRange(parse_time_ms(since, now), parse_time_ms(until, now))
    # Sign everything written so far, and export only up to that checkpoint: records
    # committed meanwhile (this export's own admin.read, say) wait for the next one.
    await run_in_threadpool(runtime.audit_writer.checkpoint)
    with reading(runtime.engine) as conn:
        last = SqlAuditStore().last_checkpoint(conn)
    upto = last.seq if last is not None else None

    def lines() -> Any:
        for line in export_lines(
            runtime.engine, issuer=runtime.issuer, wanted=wanted, now_ms=int(now * 1000), upto_seq=upto
        ):
            yield line + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="tessera-audit.jsonl"'},
    )


@router.post("/prune")
def prune(body: PruneBody, call: Admin) -> dict[str, Any]:
    runtime = call.runtime
    before_ms = parse_time_ms(body.before, runtime.clock.now())
    if before_ms is None:
        raise ValidationFailed("before is required")
    deleted, anchor = prune_before(runtime.engine, runtime.auditor, before_ms, call.context)
    return {"pruned": deleted, "anchor_seq": anchor}


@router.post("/checkpoint", status_code=201)
def checkpoint(call: Admin) -> dict[str, Any]:
    return {"seq": call.runtime.audit_writer.checkpoint()}


@router.get("/jwks")
def jwks(call: AuditReader) -> dict[str, Any]:
    return audit_jwks(call.runtime)


@public.get("/.well-known/audit-jwks.json")
def public_audit_jwks(request: Request) -> dict[str, Any]:
    """Public keys for verifying audit checkpoints offline (they are public; no credential needed)."""
    return audit_jwks(runtime_of(request))
