"""Shared by the AuthZEN unit tests: a runtime running the certification example bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.policy.authzen import AuthZenService
from tessera.policy.bundle import load_bundle
from tessera.runtime import Runtime
from tessera.storage.database import reading
from tessera.storage.tables import audit_records

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "authzen-certification"


def example_version() -> str:
    return load_bundle(EXAMPLE).version


def start_example_runtime(settings: Settings, clock: ManualClock, **changes: Any) -> Iterator[Runtime]:
    """A started runtime (no background threads) with ``TESSERA_POLICY_BUNDLE`` = the example."""
    runtime = Runtime(settings.model_copy(update={"policy_bundle": EXAMPLE, **changes}), clock=clock)
    runtime.start(background=False)
    yield runtime
    runtime.stop()


def authzen_service(runtime: Runtime) -> AuthZenService:
    return AuthZenService(
        runtime.decisions,
        runtime.entities,
        check_token=runtime.validator.verify,
        auditor=runtime.auditor,
        ids=runtime.ids,
    )


def decision_records(runtime: Runtime) -> list[dict[str, Any]]:
    """The ``decision`` audit records so far, oldest first."""
    with reading(runtime.engine) as conn:
        rows = conn.execute(
            select(audit_records).where(audit_records.c.type == "decision").order_by(audit_records.c.seq)
        ).all()
    return [dict(row._mapping) for row in rows]
