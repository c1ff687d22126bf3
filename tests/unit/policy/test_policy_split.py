"""Deciding on the per-action policy sets gives exactly what the whole set gives.

``compile_bundle`` keeps, for each action the schema declares, a policy set of only
the policies whose action scope can match it. This differential test decides many
random requests on random bundles twice, once on the split sets and once on the
whole set, and requires the same decision, determining policies, errors and
obligations: action groups, ``in`` lists, erroring policies, forbids and an
undeclared action included.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from tessera.policy.bundle import Bundle
from tessera.policy.compiled import compile_bundle
from tessera.policy.entities import Uid
from tests.unit.policy.helpers import OVERFLOW, ask, pdp_on, standard_entities

SCHEMA = """\
entity Team in [Team] { name: String };
entity User in [Team] { level: Long };
entity Folder in [Folder];
entity Doc in [Folder] { owner: String, level: Long };
action reading;
action read, list in [reading] appliesTo { principal: [User], resource: [Doc, Folder], context: { n: Long } };
action write, delete appliesTo { principal: [User], resource: [Doc, Folder], context: { n: Long } };
action purge in [delete] appliesTo { principal: [User], resource: [Doc, Folder], context: { n: Long } };
"""
ACTION_SCOPES = (
    "action",
    'action == Action::"read"',
    'action == Action::"write"',
    'action == Action::"purge"',
    'action in [Action::"list", Action::"write"]',
    'action in Action::"reading"',
    'action in [Action::"delete"]',
    'action in [Action::"reading", Action::"purge"]',
)
PRINCIPAL_SCOPES = ("principal", 'principal == User::"alice"', 'principal in Team::"eng"')
RESOURCE_SCOPES = ("resource", 'resource in Folder::"f1"', "resource is Doc")
CONDITIONS = (
    "",
    " when { resource is Doc && resource.level <= principal.level }",
    f" when {{ context.n + {OVERFLOW} > 0 }}",  # errors for any n >= 1
    " unless { context.n > 3 }",
    ' when { resource is Doc && resource.owner == "alice" }',
)
#: Every declared action, a group, and one the schema does not know.
ASKED = ("read", "list", "write", "delete", "purge", "reading", "audit")
BOB = Uid("User", "bob")
OTHER_DOC = Uid("Doc", "d2")


def random_bundle(rng: random.Random, count: int) -> Bundle:
    policies = []
    for index in range(count):
        effect = "forbid" if rng.random() < 0.3 else "permit"
        ttl = f'@max_ttl("{rng.randrange(30, 600)}")\n' if effect == "permit" and rng.random() < 0.3 else ""
        scope = ", ".join(
            (rng.choice(PRINCIPAL_SCOPES), rng.choice(ACTION_SCOPES), rng.choice(RESOURCE_SCOPES))
        )
        policies.append(f'@id("p{index}")\n{ttl}{effect} ({scope}){rng.choice(CONDITIONS)};')
    return Bundle({"schema.cedarschema": SCHEMA, "policies.cedar": "\n".join(policies)})


def world() -> list[dict[str, object]]:
    entities: list[dict[str, object]] = list(standard_entities())
    entities.append({"uid": BOB.as_json(), "attrs": {"level": 5}, "parents": []})
    entities.append(
        {
            "uid": OTHER_DOC.as_json(),
            "attrs": {"owner": "bob", "level": 3},
            "parents": [{"type": "Folder", "id": "root"}],
        }
    )
    return entities


@pytest.mark.parametrize("seed", range(12))
def test_split_policy_sets_decide_like_the_whole_set(seed: int) -> None:
    rng = random.Random(seed)
    compiled = compile_bundle(random_bundle(rng, rng.randrange(5, 40)))
    whole = dataclasses.replace(compiled, by_action={})
    split_pdp, whole_pdp = pdp_on(compiled, world()), pdp_on(whole, world())
    for action in ASKED:
        for principal in (Uid("User", "alice"), BOB):
            for resource in (Uid("Doc", "d1"), OTHER_DOC, Uid("Folder", "f1")):
                for n in (0, 1, 5):
                    split = ask(split_pdp, action, principal=principal, resource=resource, n=n)
                    full = ask(whole_pdp, action, principal=principal, resource=resource, n=n)
                    asked = (action, principal, resource, n)
                    assert split.allowed == full.allowed, asked
                    assert sorted(split.determining) == sorted(full.determining), asked
                    assert sorted(split.errors) == sorted(full.errors), asked
                    assert split.obligations == full.obligations, asked


def test_each_declared_action_gets_only_the_policies_that_can_apply_to_it() -> None:
    policies = [
        '@id("any")\npermit (principal, action, resource);',
        '@id("read")\npermit (principal, action == Action::"read", resource);',
        '@id("reading")\npermit (principal, action in Action::"reading", resource);',
        '@id("purge")\nforbid (principal, action in [Action::"purge"], resource);',
        '@id("delete-group")\nforbid (principal, action in [Action::"delete"], resource);',
    ]
    compiled = compile_bundle(Bundle({"schema.cedarschema": SCHEMA, "policies.cedar": "\n".join(policies)}))
    sizes = {action: len(policy_set) for action, policy_set in compiled.by_action.items()}
    # 'any' goes everywhere; 'reading' reaches read and list through the group, and the
    # delete group's forbid reaches purge, which is in it.
    assert sizes == {"read": 3, "list": 2, "reading": 2, "write": 1, "delete": 2, "purge": 3}
    assert len(compiled.policy_set) == 5
    pdp = pdp_on(compiled)
    assert ask(pdp, "write").determining == ("any",)
    # purge is in the delete group, so both forbids determine its deny.
    assert sorted(ask(pdp, "purge").determining) == ["delete-group", "purge"]
    # An action the schema does not declare is decided on the whole set.
    assert compiled.policy_set_for("audit") is compiled.policy_set
    assert ask(pdp, "audit").determining == ("any",)


def test_the_version_is_computed_once_per_bundle() -> None:
    compiled = compile_bundle(random_bundle(random.Random(1), 5))
    assert compiled.version == compiled.bundle.version
    assert "version" in vars(compiled)  # cached: not re-hashed on every decision
