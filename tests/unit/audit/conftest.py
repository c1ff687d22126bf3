"""Fixtures for the audit tests: a runtime whose chain holds signed and unsigned stretches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tessera.audit.records import AuditRecord
from tessera.config import Settings
from tessera.runtime import Runtime
from tests.unit.audit.helpers import fill, record_at, rows


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """As the shared fixture, but checkpoints are written only when a test asks (or every 1000 records)."""
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        issuer="http://tessera.test",
        signing_key_publish_delay=60,
        audit_checkpoint_interval=10**8,
    )


@dataclass
class Chain:
    """The stored chain: every record in seq order, and where the two checkpoints sit."""

    runtime: Runtime
    engine: Engine
    records: list[AuditRecord]
    checkpoints: tuple[int, int]

    @property
    def last(self) -> int:
        return self.records[-1].seq

    def at(self, seq: int) -> AuditRecord:
        return next(r for r in self.records if r.seq == seq)


@pytest.fixture
def chain(runtime: Runtime, engine: Engine) -> Chain:
    """Startup records, 5 test records, a checkpoint, 5 more, a checkpoint, then 2 unsigned records."""
    fill(runtime, 5)
    first = runtime.audit_writer.checkpoint()
    fill(runtime, 5, start=5)
    second = runtime.audit_writer.checkpoint()
    fill(runtime, 2, start=10)
    assert first is not None
    assert second is not None
    records = [record_at(engine, r["seq"]) for r in rows(engine)]
    assert [r.seq for r in records] == list(range(1, second + 3))
    return Chain(runtime, engine, records, (first, second))
