"""Exports: JSON Lines that verify offline with only the public audit JWKS, and fail when edited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tessera.audit.chain import VerifyReport
from tessera.audit.records import build_record
from tessera.audit.verify import (
    EXPORT_TYPE,
    ExportFormatError,
    ExportRange,
    KeyMap,
    export_lines,
    keys_from_jwks,
    verify_export,
)
from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.runtime import Runtime
from tessera.server.audit import audit_jwks
from tests.unit.audit.conftest import Chain
from tests.unit.audit.helpers import fill, public_keys, sample_event, verify


def export(runtime: Runtime, wanted: ExportRange | None = None) -> list[str]:
    """What ``GET /admin/v1/audit/export`` streams: sign the head, then the lines."""
    runtime.audit_writer.checkpoint()
    now_ms = int(runtime.clock.now() * 1000)
    return list(
        export_lines(runtime.engine, issuer=runtime.issuer, wanted=wanted or ExportRange(), now_ms=now_ms)
    )


def offline_keys(runtime: Runtime) -> Any:
    """The keys an auditor has: the published audit JWKS, as JSON, and nothing else."""
    return keys_from_jwks(json.loads(json.dumps(audit_jwks(runtime))))


def parsed(lines: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    items = [json.loads(line) for line in lines[1:]]
    records = [i["record"] for i in items if "record" in i]
    checkpoints = [i["checkpoint"] for i in items if "checkpoint" in i]
    return json.loads(lines[0]), records, checkpoints


def record_lines(lines: list[str]) -> list[int]:
    """Indexes of the record lines."""
    return [i for i, line in enumerate(lines) if line.startswith('{"record"')]


@dataclass(frozen=True)
class Exported:
    """One export, made once for the tests that only edit its lines (no database needed after)."""

    lines: list[str]
    keys: KeyMap
    ids: dict[int, str]
    checkpoints: tuple[int, ...]

    @property
    def last(self) -> int:
        return max(self.ids)

    def copy(self) -> list[str]:
        return list(self.lines)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    base = tmp_path_factory.mktemp("export")
    settings = Settings(
        home=base / "home",
        database_url=f"sqlite:///{base / 'tessera.db'}",
        issuer="http://tessera.test",
        audit_checkpoint_interval=10**8,
    )
    runtime = Runtime(settings, clock=ManualClock())
    runtime.start(background=False)
    try:
        fill(runtime, 5)
        runtime.audit_writer.checkpoint()
        fill(runtime, 5, start=5)
        runtime.audit_writer.checkpoint()
        fill(runtime, 2, start=10)
        lines = export(runtime)
        _header, records, checkpoints = parsed(lines)
        yield Exported(
            lines,
            offline_keys(runtime),
            {r["seq"]: r["id"] for r in records},
            tuple(c["seq"] for c in checkpoints),
        )
    finally:
        runtime.stop()


def failed(lines: list[str], exported: Exported) -> VerifyReport:
    report = verify_export(lines, exported.keys)
    assert not report.ok, "an edited export verified"
    return report


def test_a_full_export_verifies_offline(chain: Chain) -> None:
    lines = export(chain.runtime)
    header, records, checkpoints = parsed(lines)
    assert header["type"] == EXPORT_TYPE
    assert header["issuer"] == chain.runtime.issuer
    assert header["anchor"] == {"seq": 0, "hash": "0" * 64}
    assert [r["seq"] for r in records] == list(range(1, chain.last + 1))
    assert records[0]["time"].endswith("Z")
    assert [c["seq"] for c in checkpoints] == [*chain.checkpoints, chain.last]
    report = verify_export(lines, offline_keys(chain.runtime))
    assert report.ok, report.problem
    assert (report.records, report.checkpoints_verified, report.unsigned_tail) == (chain.last, 3, 0)
    assert verify_export([line + "\n" for line in lines], offline_keys(chain.runtime)).ok


def test_an_edited_record_line_is_named(exported: Exported) -> None:
    lines = exported.copy()
    index = record_lines(lines)[4]
    item = json.loads(lines[index])
    item["record"]["subject"] = "agt_innocent"
    lines[index] = json.dumps(item)
    report = failed(lines, exported)
    assert (report.bad_seq, report.bad_id) == (item["record"]["seq"], item["record"]["id"])


def test_a_deleted_record_line_is_named(exported: Exported) -> None:
    lines = exported.copy()
    del lines[record_lines(lines)[4]]
    report = failed(lines, exported)
    assert (report.bad_seq, report.bad_id) == (6, exported.ids[6])


def test_an_inserted_record_line_is_named(exported: Exported) -> None:
    lines = exported.copy()
    index = record_lines(lines)[4]  # seq 5
    prev_hash = json.loads(lines[index])["record"]["hash"]
    forged = build_record(sample_event(666), seq=6, record_id="aud_forged", ts_ms=1, prev_hash=prev_hash)
    lines.insert(index + 1, json.dumps({"record": forged.as_dict()}))
    report = failed(lines, exported)
    assert (report.bad_seq, report.bad_id) == (6, exported.ids[6])


def test_reordered_record_lines_are_named(exported: Exported) -> None:
    lines = exported.copy()
    a, b = record_lines(lines)[6:8]
    lines[a], lines[b] = lines[b], lines[a]
    report = failed(lines, exported)
    assert (report.bad_seq, report.bad_id) == (8, exported.ids[8])


def test_a_truncated_export_is_caught(exported: Exported) -> None:
    lines = exported.copy()
    last = exported.last
    indexes = record_lines(lines)
    without_tail = [line for i, line in enumerate(lines) if i not in indexes[-3:]]
    report = failed(without_tail, exported)
    assert report.bad_seq == last - 2
    # Dropping the tail's checkpoint as well still leaves the header's promise broken.
    assert parsed(lines)[0]["last_seq"] == last
    no_checkpoint = [
        line for line in without_tail if json.loads(line).get("checkpoint", {}).get("seq") != last
    ]
    assert len(no_checkpoint) == len(without_tail) - 1
    assert "deleted" in (failed(no_checkpoint, exported).problem or "")


def test_an_edited_checkpoint_line_fails(exported: Exported) -> None:
    lines = exported.copy()
    index = next(i for i, line in enumerate(lines) if line.startswith('{"checkpoint"'))
    item = json.loads(lines[index])
    item["checkpoint"]["head_hash"] = "e" * 64
    lines[index] = json.dumps(item)
    assert "checkpoint" in (failed(lines, exported).problem or "")


def test_an_export_does_not_verify_with_other_keys_or_issuer(exported: Exported) -> None:
    lines = exported.copy()
    assert not verify_export(lines, {}).ok
    header = json.loads(lines[0])
    header["issuer"] = "https://other.example"
    assert "issuer" in (failed([json.dumps(header), *lines[1:]], exported).problem or "")


@pytest.mark.parametrize(
    "line",
    [
        '"record"',
        "[1, 2]",
        '{"record": "x"}',
        '{"record": {"seq": 1}}',
        '{"checkpoint": {"seq": 1}}',
        "{oops",
    ],
)
def test_malformed_lines_are_a_format_error(line: str) -> None:
    header = json.dumps({"type": EXPORT_TYPE, "version": 1, "anchor": {"seq": 0, "hash": "0" * 64}})
    with pytest.raises(ExportFormatError):
        verify_export([header, line], {})


@pytest.mark.parametrize("first", ["", "not json", '{"type": "something else"}', '["tessera"]'])
def test_a_missing_or_foreign_header_is_a_format_error(first: str) -> None:
    with pytest.raises(ExportFormatError):
        verify_export([first] if first else [], {})


def _timeline(runtime: Runtime, clock: ManualClock) -> list[list[int]]:
    """Three hours, four records a minute apart in each, a checkpoint after each hour's records."""
    phases: list[list[int]] = []
    for hour in range(3):
        clock.set(1_800_000_000.0 + hour * 3600)
        seqs = []
        for n in range(4):
            clock.advance(60)
            seqs.append(fill(runtime, 1, start=hour * 10 + n)[0].seq)
        runtime.audit_writer.checkpoint()
        phases.append(seqs)
    return phases


def test_a_partial_export_is_widened_to_checkpoints_and_verifies(
    runtime: Runtime, clock: ManualClock
) -> None:
    phases = _timeline(runtime, clock)
    middle = phases[1]
    since = 1_800_000_000_000 + 3600_000 + 2 * 60_000  # the second record of the middle hour
    until = since + 60_000  # …up to, not including, the third
    lines = export(runtime, ExportRange(since, until))
    header, records, checkpoints = parsed(lines)
    seqs = [r["seq"] for r in records]
    assert seqs == middle, "widened to the checkpoints either side, no further"
    assert header["anchor"]["seq"] == phases[0][-1]
    assert [c["seq"] for c in checkpoints] == [phases[0][-1], middle[-1]]
    assert header["requested"]["since"] is not None
    report = verify_export(lines, offline_keys(runtime))
    assert report.ok, report.problem
    assert report.unsigned_tail == 0
    # The anchor's checkpoint is what lets it start mid-chain; without it, it does not verify.
    anchored = [line for line in lines if json.loads(line).get("checkpoint", {}).get("seq") != phases[0][-1]]
    assert "anchor" in (verify_export(anchored, offline_keys(runtime)).problem or "")


def test_since_only_and_empty_ranges_verify(runtime: Runtime, clock: ManualClock) -> None:
    phases = _timeline(runtime, clock)
    since_last_hour = export(runtime, ExportRange(since_ms=1_800_000_000_000 + 2 * 3600_000))
    assert [r["seq"] for r in parsed(since_last_hour)[1]] == phases[2]
    assert verify_export(since_last_hour, offline_keys(runtime)).ok
    fill(runtime, 2, start=90)  # written after the last checkpoint: the export signs them first
    tail = export(runtime, ExportRange(since_ms=int(clock.now() * 1000)))
    assert [r["seq"] for r in parsed(tail)[1]][-2:] == [phases[2][-1] + 1, phases[2][-1] + 2]
    assert verify_export(tail, offline_keys(runtime)).ok
    nothing = export(runtime, ExportRange(since_ms=int(clock.now() * 1000) + 1))
    assert parsed(nothing)[1] == []
    report = verify_export(nothing, offline_keys(runtime))
    assert report.ok, report.problem
    assert report.records == 0


def test_rotation_and_retirement_keep_old_checkpoints_verifiable(
    runtime: Runtime, clock: ManualClock
) -> None:
    fill(runtime, 3)
    runtime.audit_writer.checkpoint()
    first_kid = runtime.keyring().signing_key(clock.now()).kid  # type: ignore[union-attr]
    runtime.keys.rotate(immediate=True)
    runtime.reload_keys()
    clock.advance(1)
    fill(runtime, 3, start=3)
    runtime.audit_writer.checkpoint()
    runtime.keys.retire(first_kid)
    runtime.reload_keys()
    fill(runtime, 3, start=6)
    lines = export(runtime)
    kids = [c["kid"] for c in parsed(lines)[2]]
    assert kids[0] == first_kid
    assert len(set(kids)) == 2
    states = {k["kid"]: k["x-tessera-state"] for k in audit_jwks(runtime)["keys"]}
    assert states[first_kid] == "retired"
    report = verify_export(lines, offline_keys(runtime))
    assert report.ok, report.problem
    assert report.checkpoints_verified == 3
    assert verify(runtime).ok
    # The token JWKS drops a retired key; the audit JWKS must not, or old exports stop verifying.
    token_jwks = keys_from_jwks(runtime.keyring().jwks(clock.now()))
    assert first_kid not in token_jwks
    assert "unknown key" in (verify_export(lines, token_jwks).problem or "")
    assert public_keys(runtime).keys() == offline_keys(runtime).keys()
