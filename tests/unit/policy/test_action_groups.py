"""Action groups declared in the schema hold at decision time, not only in validation."""

from __future__ import annotations

import pytest

from tessera.clock import ManualClock
from tessera.ids import SequentialIds
from tessera.policy.bundle import bundle_from_files
from tessera.policy.compiled import compile_bundle
from tessera.policy.entities import EntityIndex, Uid
from tessera.policy.pdp import DecisionRequest, PolicyDecisionPoint

SCHEMA = """
entity Agent;
entity Doc;
action readers;
action read, list in [readers] appliesTo { principal: Agent, resource: Doc };
action write appliesTo { principal: Agent, resource: Doc };
"""
POLICIES = """
@id("readers-may")
permit (principal, action in Action::"readers", resource);

@id("no-listing-secrets")
forbid (principal, action == Action::"list", resource == Doc::"secret");
"""


@pytest.fixture
def pdp() -> PolicyDecisionPoint:
    compiled = compile_bundle(bundle_from_files({"p.cedar": POLICIES, "schema.cedarschema": SCHEMA}))
    decider = PolicyDecisionPoint(ManualClock(), SequentialIds(), EntityIndex())
    decider.activate(compiled)
    return decider


@pytest.mark.parametrize(("action", "allowed"), [("read", True), ("list", True), ("write", False)])
def test_members_of_a_group_get_what_the_group_gets(
    pdp: PolicyDecisionPoint, action: str, allowed: bool
) -> None:
    decision = pdp.decide(DecisionRequest(Uid("Agent", "a"), action, Uid("Doc", "d")))
    assert decision.allowed is allowed
    assert decision.determining == (("readers-may",) if allowed else ())


def test_a_forbid_on_a_member_still_beats_the_group_permit(pdp: PolicyDecisionPoint) -> None:
    decision = pdp.decide(DecisionRequest(Uid("Agent", "a"), "list", Uid("Doc", "secret")))
    assert not decision.allowed
    assert decision.determining == ("no-listing-secrets",)
