"""``tessera audit …``: tail and search the audit log, verify it (live or an export), export, prune."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from tessera.audit.queries import token_id
from tessera.cli.audit_offline import EXIT_TAMPERED, EXIT_USAGE, verify_file
from tessera.cli.client import (
    TIMEOUT,
    CliError,
    admin_client,
    admin_token,
    describe_os_error,
    response_error,
    server_url,
    transport_error,
)
from tessera.cli.output import JsonFlag, cell, emit_json, line, note, one_line, table
from tessera.errors import ValidationFailed

app = typer.Typer(help="Search, tail, verify, export and prune the audit log.", no_args_is_help=True)

COLUMNS = ("time", "seq", "type", "actor", "subject", "task", "outcome", "reason")
WIDTHS = (20, 6, 20, 32, 26, 12, 7)
PAGE = 1000
MIN_POLL, MAX_POLL = 0.25, 2.0
OWN_POLL_ROUTE = "GET /admin/v1/audit/records"


class Decision(StrEnum):
    permit = "permit"
    deny = "deny"


class ExportFormat(StrEnum):
    jsonl = "jsonl"


AgentOption = Annotated[
    str | None, typer.Option("--agent", metavar="ID", help="Records about or by this agent.")
]
TypeOption = Annotated[
    str | None, typer.Option("--type", metavar="TYPE", help="Record type, e.g. token.issued or agent.*.")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", metavar="TIME", help="RFC 3339 time, date, or 15m / 2h / 7d ago.")
]
UntilOption = Annotated[str | None, typer.Option("--until", metavar="TIME", help="Before this time.")]


@contextmanager
def admin_stream(path: str, params: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
    """A GET to the admin API whose body is read as it arrives (exports, text)."""
    url = server_url()
    headers = {"Authorization": f"Bearer {admin_token()}"}
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
        try:
            with http.stream("GET", f"{url}{path}", params=params, headers=headers) as response:
                if not response.is_success:
                    response.read()
                    raise response_error(response)
                yield response
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise transport_error(exc, url) from None


def query(**values: str | int | None) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def actor_of(record: Mapping[str, Any]) -> str:
    actor = record.get("actor") or {}
    kind, who = actor.get("type"), actor.get("id")
    return f"{kind}:{who}" if who else str(kind or "-")


def outcome_of(record: Mapping[str, Any]) -> str | None:
    """A decision's permit/deny, else the error a refused request got (``invalid_scope``…)."""
    decision = record.get("decision") or {}
    error = (record.get("data") or {}).get("error")
    return decision.get("outcome") or (error if isinstance(error, str) else None)


def reason_of(record: Mapping[str, Any]) -> str | None:
    """The record's reason, else what it was about: a decision's question, a route, a scope."""
    data = record.get("data") or {}
    if record.get("reason"):
        return str(record["reason"])
    if record.get("type") == "decision":
        return " ".join(str(data[key]) for key in ("action", "resource") if data.get(key)) or None
    if isinstance(data.get("route"), str):
        return str(data["route"])
    return f"scope {data['scope']}" if isinstance(data.get("scope"), str) else None


def row_of(record: Mapping[str, Any]) -> list[Any]:
    return [
        record.get("time"),
        record.get("seq"),
        record.get("type"),
        actor_of(record),
        record.get("subject"),
        record.get("task_id"),
        outcome_of(record),
        reason_of(record),
    ]


def record_line(record: Mapping[str, Any]) -> str:
    """One aligned line: time, seq, type, actor, subject, task, outcome, reason."""
    values = [one_line(cell(value)) for value in row_of(record)]
    columns = [
        value.rjust(width) if index == 1 else value.ljust(width)
        for index, (value, width) in enumerate(zip(values, WIDTHS, strict=False))
    ]
    return "  ".join([*columns, values[-1]]).rstrip()


def print_records(records: list[dict[str, Any]], json_output: bool) -> None:
    for record in records:
        line(json.dumps(record) if json_output else record_line(record))


def fetch(params: dict[str, str]) -> list[dict[str, Any]]:
    with admin_client() as client:
        result = client.get("/admin/v1/audit/records", params=params)
    records = result.get("records") if isinstance(result, dict) else None
    if not isinstance(records, list):
        raise CliError("the server's answer has no 'records' list")
    return records


def pause(seconds: float) -> None:
    time.sleep(seconds)


def own_poll(record: Mapping[str, Any]) -> bool:
    """A read of the audit log itself: with --follow, each poll would otherwise echo itself."""
    data = record.get("data") or {}
    return record.get("type") == "admin.read" and data.get("route") == OWN_POLL_ROUTE


def follow(filters: dict[str, str], after: int, json_output: bool) -> None:
    interval = MIN_POLL
    while True:
        page = fetch({**filters, "after": str(after), "order": "asc", "limit": str(PAGE)})
        if page:
            after = max(int(r["seq"]) for r in page)
        shown = [r for r in page if not own_poll(r)]
        print_records(shown, json_output)
        if len(page) == PAGE:
            continue
        interval = MIN_POLL if shown else min(interval * 2, MAX_POLL)
        pause(interval)


@app.command("tail")
def tail(
    *,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new records.")] = False,
    agent: AgentOption = None,
    type_: TypeOption = None,
    since: SinceOption = None,
    lines: Annotated[
        int, typer.Option("--lines", "-n", metavar="N", min=1, max=PAGE, help="How many (default 20).")
    ] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print raw records as JSON Lines.")] = False,
) -> None:
    """The newest records, oldest first; with --follow, then new ones as they are written (Ctrl-C stops)."""
    filters = query(agent=agent, type=type_, since=since)
    latest = fetch({**filters, "order": "desc", "limit": str(lines)})
    print_records(latest[::-1], json_output)
    if not follow_:
        return
    try:
        follow(filters, max((int(r["seq"]) for r in latest), default=0), json_output)
    except KeyboardInterrupt:
        return


@app.command("search")
def search(
    *,
    agent: AgentOption = None,
    type_: TypeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    task: Annotated[str | None, typer.Option("--task", metavar="TASK_ID", help="Records of a task.")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", metavar="TOKEN|JTI", help="Records about a token (the raw token or its jti)."
        ),
    ] = None,
    decision: Annotated[
        Decision | None, typer.Option("--decision", help="Only decisions with this outcome.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=PAGE, help="At most N records (default 100).")
    ] = 100,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Oldest first.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print raw records as JSON Lines.")] = False,
) -> None:
    """Find records by agent, type, time, task, token or decision outcome (newest first)."""
    jti = None
    if token is not None:
        try:
            jti = token_id(token.strip())  # only the jti leaves this machine, never the token
        except ValidationFailed as exc:
            raise CliError(exc.description) from None
    params = query(
        agent=agent,
        type=type_,
        since=since,
        until=until,
        task=task,
        token=jti,
        decision=decision.value if decision else None,
        limit=limit,
        order="asc" if oldest_first else "desc",
    )
    records = fetch(params)
    if json_output:
        print_records(records, True)
        return
    table(f"{len(records)} record(s)", COLUMNS, [row_of(r) for r in records])


@app.command("verify")
def verify(
    *,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", metavar="EXPORT", help="Verify an export offline instead of the server's log."
        ),
    ] = None,
    jwks: Annotated[
        str | None,
        typer.Option("--jwks", metavar="FILE|URL", help="The audit JWKS (a file, or the server's URL)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Check the hash chain and signed checkpoints; exit 0 intact, 1 tampered, 2 could not check."""
    if file is not None and jwks is None:
        raise CliError("--file needs --jwks FILE|URL (see 'tessera audit jwks')", EXIT_USAGE)
    if file is None and jwks is not None:
        raise CliError("--jwks applies only with --file", EXIT_USAGE)
    if file is not None and jwks is not None:
        report = verify_file(file, jwks)
    else:
        try:
            with admin_client() as client:
                report = client.get("/admin/v1/audit/verify")
        except CliError as exc:
            raise CliError(exc.message, EXIT_USAGE) from None
    if json_output:
        emit_json(report)
    if not report.get("ok"):
        bad = ""
        if report.get("bad_seq") is not None:
            bad = f" (first bad record: seq {report['bad_seq']}"
            bad += f", id {report['bad_id']})" if report.get("bad_id") else ")"
        raise CliError(f"audit log does not verify: {report.get('problem')}{bad}", EXIT_TAMPERED)
    if not json_output:
        first, last = report.get("first_seq"), report.get("last_seq")
        span = f" (seq {first}-{last})" if first is not None else ""
        unsigned = report.get("unsigned_tail") or 0
        tail_note = f", {unsigned} newest not yet under a checkpoint" if unsigned else ""
        line(
            f"ok: {report.get('records', 0)} record(s){span}, "
            f"{report.get('checkpoints_verified', 0)} signed checkpoint(s) verified{tail_note}"
        )


def export_to(handle: Any, response: httpx.Response) -> tuple[int, int]:
    records = checkpoints = 0
    for raw in response.iter_lines():
        if raw.startswith('{"record"'):
            records += 1
        elif raw.startswith('{"checkpoint"'):
            checkpoints += 1
        handle.write(raw + "\n")
    return records, checkpoints


@app.command("export")
def export(
    *,
    format_: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = ExportFormat.jsonl,
    since: SinceOption = None,
    until: UntilOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write to FILE (new) instead of stdout.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="With --out, print a JSON summary (the export is JSON Lines).")
    ] = False,
) -> None:
    """Stream records with their signed checkpoints (JSON Lines); verifiable offline with the JWKS."""
    params = query(format=format_.value, since=since, until=until)
    if out is None:
        with admin_stream("/admin/v1/audit/export", params) as response:
            export_to(sys.stdout, response)
        return
    if out.exists():
        raise CliError(f"refusing to overwrite '{out}'")
    partial = out.with_name(out.name + ".partial")
    try:
        with admin_stream("/admin/v1/audit/export", params) as response, partial.open("x") as handle:
            counts = export_to(handle, response)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(f"cannot write '{out}': {describe_os_error(exc)}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if json_output:
        emit_json({"file": str(out), "records": counts[0], "checkpoints": counts[1]})
    else:
        note(f"exported {counts[0]} record(s) and {counts[1]} signed checkpoint(s) to {out}")


@app.command("prune")
def prune(
    *,
    before: Annotated[
        str,
        typer.Option("--before", metavar="DATE", help="Delete records older than this (RFC 3339 or 90d)."),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Delete old records up to the newest signed checkpoint before DATE; it anchors what remains."""
    with admin_client() as client:
        result = client.post("/admin/v1/audit/prune", {"before": before})
    if json_output:
        emit_json(result)
    elif result.get("pruned"):
        anchor = result["anchor_seq"]
        line(f"pruned {result['pruned']} record(s); what remains is anchored at checkpoint seq {anchor}")
    else:
        line(f"nothing to prune: no signed checkpoint older than {before} beyond the anchor")


@app.command("checkpoint")
def checkpoint(json_output: JsonFlag = False) -> None:
    """Sign a checkpoint over the newest record now (else one comes every N records or T seconds)."""
    with admin_client() as client:
        result = client.post("/admin/v1/audit/checkpoint")
    if json_output:
        emit_json(result)
    elif result.get("seq") is None:
        line("nothing new to sign: the newest record is already under a checkpoint")
    else:
        line(f"signed checkpoint at seq {result['seq']}")


@app.command("jwks")
def jwks(json_output: JsonFlag = False) -> None:
    """Print the public keys that verify audit checkpoints (save it for offline verification)."""
    with admin_client() as client:
        result = client.get("/admin/v1/audit/jwks")
    del json_output  # the output is the JWKS, as JSON, either way
    emit_json(result)
