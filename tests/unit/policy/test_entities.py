"""The entity index: slices with ancestors, overrides, and per-entity updates that leave others alone."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.identity.agents import Agent, LifecycleState
from tessera.policy.entities import EntityIndex, Uid, agent_entity
from tests.unit.policy.helpers import ALICE, DOC, ask, bundle, entity, pdp_on, standard_entities

IN_ROOT = (
    '@id("in-root")\n'
    'permit(principal, action == Action::"read", resource) when { resource in Folder::"root" };'
)
IN_TEAM = '@id("team-eng")\npermit(principal in Team::"eng", action == Action::"write", resource);'


def agent(agent_id: str = "agt_1", **fields: Any) -> Agent:
    values: dict[str, Any] = {
        "id": agent_id,
        "name": "bot",
        "owner": "ana@example.com",
        "description": "",
        "attributes": {"role": "research"},
        "segment": "research",
        "labels": ("a",),
        "scopes": ("records:read",),
        "resource_uris": (),
        "max_ttl": 300,
        "require_dpop": False,
        "state": LifecycleState.ACTIVE,
        "created_at": 0.0,
        "updated_at": 0.0,
    }
    values.update(fields)
    return Agent(**values)


def keys(entities: list[dict[str, Any]]) -> set[str]:
    return {Uid.from_json(e["uid"]).key for e in entities}


def test_a_slice_holds_the_principal_and_resource_with_all_their_ancestors() -> None:
    index = EntityIndex()
    index.set_resources([*standard_entities(), entity(Uid("Doc", "other"), owner="x", level=0)])
    found = keys(index.slice([ALICE, DOC]))
    assert found == {"User::alice", "Team::eng", "Doc::d1", "Folder::f1", "Folder::root"}


def test_ancestors_decide_membership_through_nested_groups() -> None:
    pdp = pdp_on(bundle(IN_ROOT, IN_TEAM))
    assert ask(pdp).allowed  # d1 in f1 in root
    decision = ask(pdp, "write")
    assert decision.allowed
    assert decision.determining == ("team-eng",)
    loose = entity(DOC, (), owner="alice", level=1)
    assert not ask(pdp, entities={DOC.key: loose}).allowed


def test_deep_hierarchies_are_followed_to_the_top() -> None:
    chain = [entity(Uid("Folder", "f0"))]
    chain += [entity(Uid("Folder", f"f{i}"), (Uid("Folder", f"f{i - 1}"),)) for i in range(1, 40)]
    doc = entity(Uid("Doc", "deep"), (Uid("Folder", "f39"),), owner="alice", level=0)
    index_entities = [*standard_entities(), *chain, doc]
    pdp = pdp_on(
        bundle(
            '@id("read")\npermit(principal, action == Action::"read", resource);',
            '@id("top-secret")\nforbid(principal, action, resource) when { resource in Folder::"f0" };',
        ),
        index_entities,
    )
    assert len(pdp.entities.slice([Uid("Doc", "deep")])) == 41
    decision = ask(pdp, resource=Uid("Doc", "deep"))
    # A forbid on the farthest ancestor must still apply: a cut-off hierarchy would widen access.
    assert not decision.allowed
    assert decision.determining == ("top-secret",)


def test_cycles_in_parents_end() -> None:
    index = EntityIndex()
    index.set_resources(
        [entity(Uid("Folder", "a"), (Uid("Folder", "b"),)), entity(Uid("Folder", "b"), (Uid("Folder", "a"),))]
    )
    assert keys(index.slice([Uid("Folder", "a")])) == {"Folder::a", "Folder::b"}


def test_overrides_replace_indexed_entities_and_their_ancestry() -> None:
    index = EntityIndex()
    index.set_resources(standard_entities())
    moved = entity(DOC, (Uid("Folder", "elsewhere"),), owner="bob", level=7)
    extra = entity(Uid("Folder", "elsewhere"))
    found = index.slice([ALICE, DOC], {DOC.key: moved, "Folder::elsewhere": extra})
    by_key = {Uid.from_json(e["uid"]).key: e for e in found}
    assert by_key["Doc::d1"] is moved
    assert "Folder::f1" not in by_key  # the indexed parents no longer apply
    assert by_key["Folder::elsewhere"] is extra
    # The index itself is untouched.
    assert index.get(DOC) == standard_entities()[-1]


def test_unknown_uids_are_left_out_and_owners_are_synthesised() -> None:
    index = EntityIndex()
    index.set_agents([agent()])
    found = {Uid.from_json(e["uid"]).key: e for e in index.slice([Uid("Agent", "agt_1"), Uid("Doc", "nope")])}
    assert set(found) == {"Agent::agt_1", "Owner::ana@example.com"}
    assert found["Owner::ana@example.com"]["attrs"] == {"email": "ana@example.com"}


def test_an_agent_entity_carries_registry_fields_and_tags() -> None:
    assert agent_entity(agent(segment=None, state=LifecycleState.SUSPENDED)) == {
        "uid": {"type": "Agent", "id": "agt_1"},
        "attrs": {
            "name": "bot",
            "owner": "ana@example.com",
            "segment": "",
            "state": "suspended",
            "scopes": ["records:read"],
            "labels": ["a"],
            "region": "",
        },
        "parents": [{"type": "Owner", "id": "ana@example.com"}],
        "tags": {"role": "research"},
    }


def test_putting_one_agent_leaves_every_other_entity_as_it_was() -> None:
    index = EntityIndex()
    index.set_agents([agent("agt_1"), agent("agt_2")])
    index.set_resources(standard_entities())
    index.set_static([entity(Uid("Folder", "static"))])
    before = {uid: index.get(uid) for uid in (Uid("Agent", "agt_2"), DOC, Uid("Folder", "static"))}
    index.put_agent(agent("agt_1", state=LifecycleState.QUARANTINED))
    changed = index.get(Uid("Agent", "agt_1"))
    assert changed is not None
    assert changed["attrs"]["state"] == "quarantined"
    for uid, entity_before in before.items():
        assert index.get(uid) is entity_before, uid  # the same object: nothing was rebuilt


def test_putting_and_removing_a_resource_leaves_the_others_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    converted: list[str] = []

    def counting(a: Agent) -> dict[str, Any]:
        converted.append(a.id)
        return agent_entity(a)

    index = EntityIndex()
    index.set_agents([agent("agt_1")])
    index.set_resources(standard_entities())
    monkeypatch.setattr("tessera.policy.entities.agent_entity", counting)
    others = {uid: index.get(uid) for uid in (Uid("Agent", "agt_1"), ALICE, Uid("Folder", "f1"))}
    index.put_resource(entity(DOC, owner="bob", level=5))
    index.remove_resource(Uid("Folder", "root"))
    index.put_agent(agent("agt_9"))
    assert converted == ["agt_9"]  # only the agent that changed was converted
    for uid, entity_before in others.items():
        assert index.get(uid) is entity_before, uid
    assert index.get(DOC) == entity(DOC, owner="bob", level=5)
    assert index.get(Uid("Folder", "root")) is None


def test_agents_win_over_resources_and_resources_over_static_entities() -> None:
    index = EntityIndex()
    uid = Uid("Folder", "x")
    index.set_static([entity(uid, tag="static")])
    assert index.get(uid) == entity(uid, tag="static")
    index.put_resource(entity(uid, tag="resource"))
    assert index.get(uid) == entity(uid, tag="resource")
    index.remove_resource(uid)
    assert index.get(uid) == entity(uid, tag="static")


def test_of_type_lists_every_layer() -> None:
    index = EntityIndex()
    index.set_static([entity(Uid("Folder", "s"))])
    index.set_resources([entity(Uid("Folder", "r")), entity(Uid("Doc", "d"))])
    index.set_agents([agent("agt_1")])
    assert index.of_type("Folder") == [Uid("Folder", "r"), Uid("Folder", "s")]
    assert index.of_type("Agent") == [Uid("Agent", "agt_1")]


@pytest.mark.parametrize("value", ["Agent::x", {"type": "Agent"}, {"id": "x"}, 3])
def test_malformed_uids_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not an entity uid"):
        Uid.from_json(value)


def test_uids_read_the_entity_escape() -> None:
    assert Uid.from_json({"__entity": {"type": "Doc", "id": "d1"}}) == DOC
