"""PDP semantics: default deny, forbid wins, errors never widen access, obligations, ids and versions."""

from __future__ import annotations

import pytest

from tessera.clock import ManualClock
from tessera.ids import RandomIds, SequentialIds
from tessera.policy.compiled import compile_bundle
from tessera.policy.entities import EntityIndex, Uid
from tessera.policy.pdp import DecisionRequest, NoPolicyLoaded, PolicyDecisionPoint, merge_obligations
from tests.unit.policy.helpers import ALICE, DOC, OVERFLOW, ask, bundle, entity, pdp_on

READ = '@id("read-all")\npermit(principal, action == Action::"read", resource);'
FORBID_ABOVE_LEVEL = (
    '@id("forbid-above-level")\n'
    "forbid(principal, action, resource is Doc) when { resource.level > principal.level };"
)
ERRORING_FORBID = (
    f'@id("erroring-forbid")\nforbid(principal, action, resource) when {{ context.n + {OVERFLOW} > 0 }};'
)
ERRORING_PERMIT = (
    f'@id("erroring-permit")\npermit(principal, action, resource) when {{ context.n + {OVERFLOW} > 0 }};'
)


def test_no_applicable_permit_means_deny_with_nothing_determining() -> None:
    pdp = pdp_on(bundle('@id("write-only")\npermit(principal, action == Action::"write", resource);'))
    decision = ask(pdp, "read")
    assert not decision.allowed
    assert decision.determining == ()
    assert decision.errors == ()
    assert decision.obligations == {}
    assert ask(pdp, "write").allowed


def test_an_empty_policy_set_denies_everything() -> None:
    pdp = pdp_on(bundle("// nothing but a comment", "forbid(principal, action, resource) when { false };"))
    for action in ("read", "write", "delete"):
        assert not ask(pdp, action).allowed


def test_forbid_beats_permit_and_is_the_determining_policy() -> None:
    pdp = pdp_on(bundle(READ, FORBID_ABOVE_LEVEL))
    assert ask(pdp).allowed  # d1 is level 1, alice level 2
    high = entity(DOC, (Uid("Folder", "f1"),), owner="bob", level=9)
    decision = ask(pdp, entities={DOC.key: high})
    assert not decision.allowed
    assert decision.determining == ("forbid-above-level",)
    assert decision.obligations == {}


def test_an_erroring_forbid_denies_even_when_a_permit_applies() -> None:
    pdp = pdp_on(bundle(READ, ERRORING_FORBID))
    decision = ask(pdp, n=1)
    assert not decision.allowed
    assert decision.determining == ("erroring-forbid",)
    assert len(decision.errors) == 1
    assert "`erroring-forbid`" in decision.errors[0]
    assert "overflow" in decision.errors[0]


def test_an_erroring_permit_is_skipped_and_reported_while_another_permit_allows() -> None:
    pdp = pdp_on(bundle(ERRORING_PERMIT, READ))
    decision = ask(pdp, n=1)
    assert decision.allowed
    assert decision.determining == ("read-all",)
    assert len(decision.errors) == 1
    assert "`erroring-permit`" in decision.errors[0]


def test_an_erroring_permit_alone_denies_and_reports_the_error() -> None:
    pdp = pdp_on(bundle(ERRORING_PERMIT))
    decision = ask(pdp, n=1)
    assert not decision.allowed
    assert decision.determining == ()
    assert "`erroring-permit`" in decision.errors[0]
    # Without the error, the same permit allows: the deny came from the error.
    assert ask(pdp, n=-1).allowed


def test_a_missing_entity_makes_its_attribute_reads_error_and_deny() -> None:
    pdp = pdp_on(
        bundle(
            '@id("owner-reads")\n'
            'permit(principal, action, resource is Doc) when { resource.owner == "alice" };'
        )
    )
    assert ask(pdp).allowed
    decision = ask(pdp, resource=Uid("Doc", "unknown"))
    assert not decision.allowed
    assert any("`owner-reads`" in error for error in decision.errors)


def test_an_evaluation_over_its_budget_denies() -> None:
    pdp = pdp_on(bundle(READ), timeout_ms=1e-9)
    decision = ask(pdp)
    assert not decision.allowed
    assert decision.determining == ()
    assert "over its budget" in decision.errors[-1]


def test_entities_cedar_cannot_read_deny_with_the_reason() -> None:
    pdp = pdp_on(bundle(READ))
    bad = {"uid": DOC.as_json(), "attrs": {"owner": None, "level": 1}, "parents": []}
    decision = ask(pdp, entities={DOC.key: bad})
    assert not decision.allowed
    assert decision.errors
    assert "null" in decision.errors[0]


def test_obligations_come_from_the_determining_permits_annotations() -> None:
    pdp = pdp_on(
        bundle(
            '@id("short")\n@max_ttl("300")\n@note("first")\n'
            'permit(principal, action == Action::"read", resource);',
            '@id("shorter")\n@max_ttl("60")\n@approval("required")\n'
            'permit(principal, action == Action::"read", resource is Doc);',
            '@id("optional")\n@approval("optional")\npermit(principal, action == Action::"read", resource);',
            '@id("not-applying")\n@max_ttl("5")\npermit(principal, action == Action::"write", resource);',
        )
    )
    decision = ask(pdp)
    assert decision.allowed
    assert sorted(decision.determining) == ["optional", "short", "shorter"]
    assert decision.obligations == {"max_ttl": "60", "approval": "required", "note": "first"}
    assert "id" not in decision.obligations


@pytest.mark.parametrize(
    ("sets", "merged"),
    [
        ([{"id": "a", "max_ttl": "300"}, {"id": "b", "max_ttl": "60"}], {"max_ttl": "60"}),
        ([{"max_ttl": "60"}, {"max_ttl": "300"}], {"max_ttl": "60"}),
        ([{"approval": "required"}, {"approval": "optional"}], {"approval": "required"}),
        ([{"approval": "optional"}, {"approval": "required"}], {"approval": "required"}),
        ([{"max_ttl": "soon"}, {"max_ttl": "60"}], {"max_ttl": "soon"}),
        ([{"max_uses": "3"}, {"max_uses": "1"}, {"region": "eu"}], {"max_uses": "1", "region": "eu"}),
        ([], {}),
    ],
)
def test_merge_obligations_keeps_the_strictest(sets: list[dict[str, str]], merged: dict[str, str]) -> None:
    assert merge_obligations(sets) == merged


def test_decision_ids_are_unique_and_the_policy_version_is_reported() -> None:
    compiled = compile_bundle(bundle(READ))
    pdp = pdp_on(compiled, ids=RandomIds())
    decisions = [ask(pdp, action) for action in ("read", "write") * 50]
    assert len({d.decision_id for d in decisions}) == 100
    assert all(d.decision_id.startswith("dec_") for d in decisions)
    assert {d.policy_version for d in decisions} == {compiled.version}
    assert decisions[0].explanation() == {
        "decision_id": decisions[0].decision_id,
        "policy_version": compiled.version,
        "determining_policies": ["read-all"],
        "errors": [],
        "obligations": {},
    }


def test_activating_another_bundle_switches_decisions_and_version() -> None:
    first = compile_bundle(bundle(READ))
    second = compile_bundle(
        bundle(READ, '@id("no-reading")\nforbid(principal, action == Action::"read", resource);')
    )
    pdp = pdp_on(first)
    assert (pdp.version, ask(pdp).allowed) == (first.version, True)
    pdp.activate(second)
    decision = ask(pdp)
    assert (pdp.version, decision.policy_version, decision.allowed) == (second.version, second.version, False)
    assert decision.determining == ("no-reading",)


def test_nothing_is_decided_before_a_bundle_is_active() -> None:
    pdp = PolicyDecisionPoint(ManualClock(), SequentialIds(), EntityIndex())
    assert pdp.version is None
    with pytest.raises(NoPolicyLoaded):
        pdp.decide(DecisionRequest(ALICE, "read", DOC))


def test_a_batch_is_decided_in_order() -> None:
    pdp = pdp_on(bundle(READ))
    requests = [DecisionRequest(ALICE, action, DOC, {"n": 0}) for action in ("read", "write", "read")]
    assert [d.allowed for d in pdp.decide_batch(requests)] == [True, False, True]


def test_static_entities_of_the_bundle_are_known_to_decisions() -> None:
    entities = '[{"uid": {"type": "Folder", "id": "public"}, "attrs": {}, "parents": []}]'
    pdp = pdp_on(
        bundle(
            '@id("public")\npermit(principal, action, resource) when { resource in Folder::"public" };',
            files={"entities.json": entities},
        ),
        entities=[],
    )
    doc = entity(Uid("Doc", "p"), (Uid("Folder", "public"),), owner="x", level=0)
    assert ask(pdp, resource=Uid("Doc", "p"), entities={"Doc::p": doc}).allowed
    assert pdp.entities.get(Uid("Folder", "public")) is not None
