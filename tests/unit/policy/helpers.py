"""Builders for the policy tests: a small schema, bundles, a PDP on them, audit rows, a broken log.

The document schema here is the tests' own, so each case states the few
policies it needs; the starter bundle is tested on its own terms elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text

from tessera.clock import ManualClock
from tessera.ids import IdGenerator, SequentialIds
from tessera.policy.bundle import Bundle
from tessera.policy.compiled import CompiledBundle, compile_bundle
from tessera.policy.entities import EntityIndex, Uid
from tessera.policy.pdp import Decision, DecisionRequest, PolicyDecisionPoint

SCHEMA = """\
entity Team in [Team] { name: String };
entity User in [Team] { level: Long };
entity Folder in [Folder];
entity Doc in [Folder] { owner: String, level: Long };
action read, write, delete appliesTo {
  principal: [User],
  resource: [Doc, Folder],
  context: { n: Long },
};
"""

#: Adding ``context.n`` to this overflows a Cedar Long for any n >= 1: a runtime error
#: in a policy that the validator accepts.
OVERFLOW = "9223372036854775807"

ALICE = Uid("User", "alice")
DOC = Uid("Doc", "d1")


def bundle(*policies: str, schema: str = SCHEMA, files: dict[str, str] | None = None) -> Bundle:
    """A bundle whose ``policies.cedar`` holds ``policies``, plus any other ``files``."""
    return Bundle({"schema.cedarschema": schema, "policies.cedar": "\n".join(policies), **(files or {})})


def entity(uid: Uid, parents: tuple[Uid, ...] = (), **attrs: Any) -> dict[str, Any]:
    return {"uid": uid.as_json(), "attrs": dict(attrs), "parents": [p.as_json() for p in parents]}


def standard_entities() -> list[dict[str, Any]]:
    """alice (level 2) in team eng; d1 (level 1) in folder f1 in folder root."""
    return [
        entity(Uid("Team", "eng"), name="eng"),
        entity(ALICE, (Uid("Team", "eng"),), level=2),
        entity(Uid("Folder", "root")),
        entity(Uid("Folder", "f1"), (Uid("Folder", "root"),)),
        entity(DOC, (Uid("Folder", "f1"),), owner="alice", level=1),
    ]


def pdp_on(
    compiled: CompiledBundle | Bundle,
    entities: list[dict[str, Any]] | None = None,
    *,
    ids: IdGenerator | None = None,
    timeout_ms: float = 10_000,
) -> PolicyDecisionPoint:
    """A PDP with ``compiled`` active and ``entities`` registered as resources."""
    if isinstance(compiled, Bundle):
        compiled = compile_bundle(compiled)
    index = EntityIndex()
    index.set_resources(standard_entities() if entities is None else entities)
    pdp = PolicyDecisionPoint(ManualClock(), ids or SequentialIds(), index, timeout_ms=timeout_ms)
    pdp.activate(compiled)
    return pdp


def ask(
    pdp: PolicyDecisionPoint,
    action: str = "read",
    *,
    principal: Uid = ALICE,
    resource: Uid = DOC,
    n: int = 0,
    entities: dict[str, dict[str, Any]] | None = None,
) -> Decision:
    return pdp.decide(DecisionRequest(principal, action, resource, {"n": n}, entities or {}))


def audit_records(engine: Engine, type_: str | None = None) -> list[dict[str, Any]]:
    """Stored audit record bodies in chain order, optionally of one type."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, body FROM audit_records ORDER BY seq")).all()
    bodies = [json.loads(row.body) for row in rows]
    return [b for b in bodies if type_ is None or b["type"] == type_]


def _sql(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


@contextmanager
def audit_down(engine: Engine) -> Iterator[None]:
    """Make every insert into ``audit_records`` fail (a trigger), and restore it afterwards."""
    if engine.dialect.name == "sqlite":
        _sql(
            engine,
            "CREATE TRIGGER policy_test_audit_down BEFORE INSERT ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'audit down'); END",
        )
        undo = ["DROP TRIGGER IF EXISTS policy_test_audit_down"]
    else:
        _sql(
            engine,
            "CREATE OR REPLACE FUNCTION policy_test_audit_down() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'audit down'; END $$",
        )
        _sql(
            engine,
            "CREATE TRIGGER policy_test_audit_down BEFORE INSERT ON audit_records "
            "FOR EACH ROW EXECUTE FUNCTION policy_test_audit_down()",
        )
        undo = [
            "DROP TRIGGER IF EXISTS policy_test_audit_down ON audit_records",
            "DROP FUNCTION IF EXISTS policy_test_audit_down()",
        ]
    try:
        yield
    finally:
        for statement in undo:
            _sql(engine, statement)
