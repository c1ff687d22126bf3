"""``tessera audit export|verify``: exports that verify offline, tampering caught, and the exit codes.

Exit codes of ``audit verify``: 0 intact, 1 does not verify (tampered), 2 could not check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from tessera.storage.database import create_database_engine, writing
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


@pytest.fixture
def exported(cli: Cli) -> tuple[Path, Path]:
    """An export of a log with some history, and the audit JWKS saved beside it."""
    for name in ("alpha", "beta", "gamma"):
        agent_id = cli.ok("agent", "create", name, "--owner", "o@example.com").strip()
        cli.ok("agent", "suspend", agent_id, "--reason", f"{name} looks odd")
    cli.ok("audit", "checkpoint")
    cli.ok("agent", "create", "delta", "--owner", "o@example.com")
    export = cli.workdir / "audit.jsonl"
    for _ in range(5):
        # The server signs before it exports, but a record committed meanwhile (the export's own
        # read record, say) can land after that checkpoint; such an export does not verify offline.
        export.unlink(missing_ok=True)
        result = cli("audit", "export", "--format", "jsonl", "--out", str(export))
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith("tessera: exported ")
        if signed_to_the_end(export.read_text().splitlines()):
            break
    jwks = cli.workdir / "audit-jwks.json"
    jwks.write_text(cli.ok("audit", "jwks"))
    return export, jwks


def signed_to_the_end(lines: list[str]) -> bool:
    records = [json.loads(row)["record"]["seq"] for row in lines if row.startswith('{"record"')]
    checkpoints = [json.loads(row)["checkpoint"]["seq"] for row in lines if row.startswith('{"checkpoint"')]
    return bool(records and checkpoints) and checkpoints[-1] == records[-1]


def verify_file(cli: Cli, export: Path, jwks: Path | str) -> tuple[int, str, str]:
    result = cli("audit", "verify", "--file", str(export), "--jwks", str(jwks))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def rewrite(source: Path, target: Path, change: object) -> Path:
    lines = source.read_text().splitlines()
    changed = change(lines)  # type: ignore[operator]
    target.write_text("\n".join(changed) + "\n")
    return target


def record_lines(lines: list[str]) -> list[int]:
    return [i for i, row in enumerate(lines) if row.startswith('{"record"')]


def test_export_verifies_offline_with_only_the_jwks(cli: Cli, exported: tuple[Path, Path]) -> None:
    export, jwks = exported
    lines = export.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["type"] == "tessera.audit.export"
    records = [json.loads(row)["record"] for row in lines if row.startswith('{"record"')]
    checkpoints = [json.loads(row)["checkpoint"] for row in lines if row.startswith('{"checkpoint"')]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert checkpoints[-1]["seq"] == records[-1]["seq"]
    code, out, err = verify_file(cli, export, jwks)
    assert (code, err) == (0, "")
    count, signed = len(records), len(checkpoints)
    assert out == f"ok: {count} record(s) (seq 1-{count}), {signed} signed checkpoint(s) verified\n"
    report = cli.json("audit", "verify", "--file", str(export), "--jwks", str(jwks))
    assert (report["ok"], report["unsigned_tail"]) == (True, 0)
    # The same export on stdout, and the refusal to overwrite a file.
    streamed = cli.ok("audit", "export")
    assert streamed.splitlines()[1:][: len(records)] == lines[1 : len(records) + 1]
    assert cli.fails("audit", "export", "--out", str(export)) == f"error: refusing to overwrite '{export}'"
    assert not export.with_name(export.name + ".partial").exists()


def test_the_jwks_can_be_fetched_from_the_server(
    cli: Cli, server: ServerProcess, exported: tuple[Path, Path]
) -> None:
    export, _ = exported
    assert verify_file(cli, export, server.url)[0] == 0
    assert verify_file(cli, export, f"{server.url}/.well-known/audit-jwks.json")[0] == 0


TAMPERING = {
    "edit": "was modified (hash mismatch)",
    "delete": "missing records before seq",
    "insert": "out-of-order or repeated record",
    "reorder": "missing records before seq",
    "truncate": "deleted tail",
}


def tampered(lines: list[str], how: str, at: int) -> list[str]:
    rows = list(lines)
    if how == "edit":
        record = json.loads(rows[at])
        record["record"]["reason"] = "nothing to see here"
        rows[at] = json.dumps(record, sort_keys=True)
    elif how == "delete":
        del rows[at]
    elif how == "insert":
        rows.insert(at, rows[at - 1])
    elif how == "reorder":
        rows[at], rows[at + 1] = rows[at + 1], rows[at]
    else:  # truncate: drop the newest records, keep the checkpoints that signed them
        rows = [row for i, row in enumerate(rows) if i not in record_lines(rows)[-2:]]
    return rows


def test_tampered_export_fails_naming_the_first_bad_record(cli: Cli, exported: tuple[Path, Path]) -> None:
    export, jwks = exported
    lines = export.read_text().splitlines()
    at = record_lines(lines)[4]
    target = json.loads(lines[at])["record"]
    for how, problem in TAMPERING.items():
        copy = cli.workdir / f"{how}.jsonl"
        copy.write_text("\n".join(tampered(lines, how, at)) + "\n")
        code, out, err = verify_file(cli, copy, jwks)
        assert (how, code, out) == (how, 1, "")
        assert err.startswith("error: audit log does not verify: ")
        assert problem in err, (how, err)
    code, _, err = verify_file(cli, cli.workdir / "edit.jsonl", jwks)
    assert f"record seq {target['seq']} was modified" in err
    assert f"(first bad record: seq {target['seq']}, id {target['id']})" in err


def test_a_forged_checkpoint_or_foreign_keys_fail(cli: Cli, exported: tuple[Path, Path]) -> None:
    export, jwks = exported

    def forge(rows: list[str]) -> list[str]:
        rows = list(rows)
        last = json.loads(rows[-1])
        last["checkpoint"]["head_hash"] = "0" * 64
        rows[-1] = json.dumps(last)
        return rows

    code, _, err = verify_file(cli, rewrite(export, cli.workdir / "forged.jsonl", forge), jwks)
    assert code == 1
    assert "is invalid" in err

    def unsigned(rows: list[str]) -> list[str]:
        """Drop the newest record and every checkpoint, and fix the header to match."""
        header = json.loads(rows[0])
        header["last_seq"] -= 1
        kept = [row for row in rows[1:] if row.startswith('{"record"')][:-1]
        return [json.dumps(header, sort_keys=True), *kept]

    code, out, err = verify_file(cli, rewrite(export, cli.workdir / "unsigned.jsonl", unsigned), jwks)
    assert (code, out) == (1, "")
    assert (
        "are not covered by a signed checkpoint, so they cannot be verified (first bad record: seq 1)" in err
    )
    foreign = cli.workdir / "foreign.json"
    keys = json.loads(jwks.read_text())
    for key in keys["keys"]:
        key["kid"] = "someone-else"
    foreign.write_text(json.dumps(keys))
    code, _, err = verify_file(cli, export, foreign)
    assert code == 1
    assert "unknown key" in err


def test_usage_errors_exit_2(cli: Cli, exported: tuple[Path, Path]) -> None:
    export, jwks = exported

    def usage(*args: str) -> str:
        result = cli("audit", "verify", *args)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        return result.stderr

    assert usage("--file", str(export)).startswith("error: --file needs --jwks")
    assert usage("--jwks", str(jwks)) == "error: --jwks applies only with --file\n"
    missing = cli.workdir / "missing.jsonl"
    assert usage("--file", str(missing), "--jwks", str(jwks)) == (
        f"error: cannot read export '{missing}': no such file or directory\n"
    )
    assert "is not valid json" in usage("--file", str(export), "--jwks", str(export))
    not_jwks = cli.workdir / "not-jwks.json"
    not_jwks.write_text('{"kty": "EC"}')
    assert "is not a jwk set" in usage("--file", str(export), "--jwks", str(not_jwks))
    empty = cli.workdir / "empty-jwks.json"
    empty.write_text('{"keys": []}')
    assert "no usable public keys" in usage("--file", str(export), "--jwks", str(empty))
    not_export = cli.workdir / "not-export.jsonl"
    not_export.write_text('{"hello": 1}\n')
    result = cli("audit", "verify", "--file", str(not_export), "--jwks", str(jwks))
    assert result.exit_code == 1
    assert "not a tessera audit export" in result.stderr


def test_server_side_verify_and_tampering_in_the_database(cli: Cli, database_url: str) -> None:
    for name in ("alpha", "beta"):
        cli.ok("agent", "create", name, "--owner", "o@example.com")
    assert cli.ok("audit", "verify").startswith("ok: ")
    report = cli.json("audit", "verify")
    assert report["ok"] is True
    assert report["problem"] is None
    engine = create_database_engine(database_url)
    try:
        with writing(engine) as conn:
            body = conn.execute(text("SELECT body FROM audit_records WHERE seq = 3")).scalar_one()
            edited = body.replace('"alpha"', '"mallory"')
            assert edited != body
            conn.execute(text("UPDATE audit_records SET body = :b WHERE seq = 3"), {"b": edited})
    finally:
        engine.dispose()
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: audit log does not verify: record seq 3 was modified")
    assert "(first bad record: seq 3, id aud_" in result.stderr
    as_json = cli("audit", "verify", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["bad_seq"] == 3


def test_verify_cannot_reach_the_server_exits_2(offline_cli: Cli) -> None:
    result = offline_cli("audit", "verify")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot connect to tessera at ")
