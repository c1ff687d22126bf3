"""ResourceService: registered resources reach decisions here and, through the change feed, elsewhere."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import NotFound, ValidationFailed
from tessera.identity.agents import Transition
from tessera.identity.service import NewAgent
from tessera.policy.bundle import Bundle
from tessera.policy.decisions import Question
from tessera.policy.entities import Uid
from tessera.policy.pdp import Decision
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime
from tests.unit.policy.helpers import audit_records

FINANCE_READS = (
    '@id("finance-reads")\n'
    'permit(principal is Agent, action == Action::"read", resource)\n'
    'when { resource in ResourceGroup::"finance" };\n'
)


@pytest.fixture
def finance(runtime: Runtime) -> str:
    """Apply a bundle (starter schema) where agents read what is in the finance group; returns an agent."""
    files = {
        "schema.cedarschema": starter_bundle().files["schema.cedarschema"],
        "finance.cedar": FINANCE_READS,
    }
    runtime.policies.apply(Bundle(files), RequestContext())
    return runtime.agents.create(NewAgent(name="reader", owner="ana@example.com")).id


def read(runtime: Runtime, agent_id: str, resource: str) -> Decision:
    question = Question(Uid("Agent", agent_id), "read", Uid("Resource", resource))
    return runtime.decisions.decide([question], RequestContext())[0]


def group(runtime: Runtime, id_: str, *parents: str) -> None:
    runtime.resources.put("ResourceGroup", id_, {}, [("ResourceGroup", p) for p in parents])


def test_a_registered_resource_in_nested_groups_is_decided_at_once(runtime: Runtime, finance: str) -> None:
    assert not read(runtime, finance, "ledger").allowed
    group(runtime, "finance")
    group(runtime, "accounting", "finance")
    runtime.resources.put("Resource", "ledger", {"kind": "ledger"}, [("ResourceGroup", "accounting")])
    decision = read(runtime, finance, "ledger")
    assert decision.allowed
    assert decision.determining == ("finance-reads",)


def test_list_update_and_remove(runtime: Runtime, clock: ManualClock) -> None:
    first = runtime.resources.put("Resource", "r1", {"kind": "a"}, [("ResourceGroup", "g")])
    runtime.resources.put("ResourceGroup", "g", {"segment": "s"}, [])
    clock.advance(100)
    updated = runtime.resources.put("Resource", "r1", {"kind": "b"}, [])
    assert (updated.created_at, updated.updated_at) == (first.created_at, clock.now())
    assert updated.attributes == {"kind": "b"}
    listed = runtime.resources.list()
    assert [(r.type, r.id) for r in listed] == [("Resource", "r1"), ("ResourceGroup", "g")]
    assert [r.id for r in runtime.resources.list("ResourceGroup")] == ["g"]
    assert listed[0].entity() == {
        "uid": {"type": "Resource", "id": "r1"},
        "attrs": {"kind": "b"},
        "parents": [],
    }
    assert runtime.entities.get(Uid("Resource", "r1")) == listed[0].entity()
    runtime.resources.remove("Resource", "r1")
    assert runtime.entities.get(Uid("Resource", "r1")) is None
    assert [r.id for r in runtime.resources.list()] == ["g"]
    types = [r["type"] for r in audit_records(runtime.engine) if r["type"].startswith("resource.")]
    assert types == ["resource.added", "resource.added", "resource.updated", "resource.removed"]


def test_removing_an_unknown_resource_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(NotFound, match='no resource Resource::"ghost"'):
        runtime.resources.remove("Resource", "ghost")


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (("bad type", "x", {}, []), "invalid entity type"),
        (("Resource", "", {}, []), "1-256 printable"),
        (("Resource", "a\nb", {}, []), "1-256 printable"),
        (("Resource", "x" * 257, {}, []), "1-256 printable"),
        (("Resource", "x", {}, [("1Group", "g")]), "invalid entity type"),
        (("Resource", "x", {"weight": 1.5}, []), "not cedar values"),
        (("Resource", "x", {"owner": None}, []), "not cedar values"),
        (("Resource", "x", {"big": 2**70}, []), "not cedar values"),
    ],
)
def test_invalid_resources_are_refused(
    runtime: Runtime, resource: tuple[str, str, dict[str, Any], list[tuple[str, str]]], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        runtime.resources.put(*resource)
    assert runtime.resources.list() == []


def test_namespaced_types_are_accepted(runtime: Runtime) -> None:
    runtime.resources.put("Acme::Doc", "d", {"tags": ["a", "b"], "n": 3, "ok": True}, [])
    assert runtime.entities.get(Uid("Acme::Doc", "d")) is not None


def test_resource_changes_reach_another_runtime(
    runtime: Runtime, second_runtime: Runtime, finance: str
) -> None:
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    group(runtime, "finance")
    runtime.resources.put("Resource", "ledger", {}, [("ResourceGroup", "finance")])
    assert second_runtime.entities.get(Uid("Resource", "ledger")) is None
    assert not read(second_runtime, finance, "ledger").allowed
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    assert second_runtime.entities.get(Uid("Resource", "ledger")) is not None
    assert read(second_runtime, finance, "ledger").allowed

    runtime.resources.put("Resource", "ledger", {}, [])  # moved out of the group
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    assert not read(second_runtime, finance, "ledger").allowed

    runtime.resources.remove("ResourceGroup", "finance")
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    assert second_runtime.entities.get(Uid("ResourceGroup", "finance")) is None


def test_a_runtime_started_later_loads_registered_resources(runtime: Runtime) -> None:
    runtime.resources.put("Resource", "r1", {"kind": "a"}, [])
    later = Runtime(runtime.settings, clock=runtime.clock)
    try:
        later.start(background=False)
        assert later.entities.get(Uid("Resource", "r1")) == {
            "uid": {"type": "Resource", "id": "r1"},
            "attrs": {"kind": "a"},
            "parents": [],
        }
    finally:
        later.stop()


def test_agent_changes_replace_only_that_agents_entity(runtime: Runtime, second_runtime: Runtime) -> None:
    one = runtime.agents.create(NewAgent(name="one", owner="ana@example.com", segment="s")).id
    two = runtime.agents.create(NewAgent(name="two", owner="ana@example.com", segment="s")).id
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    two_before = second_runtime.entities.get(Uid("Agent", two))
    assert two_before is not None
    runtime.agents.transition(one, Transition.SUSPEND, "maintenance")
    first = runtime.entities.get(Uid("Agent", one))
    assert first is not None
    assert first["attrs"]["state"] == "suspended"
    second_runtime.follower.poll_once()  # type: ignore[union-attr]
    seen = second_runtime.entities.get(Uid("Agent", one))
    assert seen is not None
    assert seen["attrs"]["state"] == "suspended"
    assert second_runtime.entities.get(Uid("Agent", two)) is two_before  # untouched, not rebuilt
