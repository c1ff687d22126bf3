"""Compiling a bundle: parse and validate once, keep pre-parsed handles for decisions.

Each policy's id is its ``@id`` annotation, or ``file.cedar:LINE`` without one
(``file.cedar:LINE#2`` for a second policy starting on that line), so decisions
name policies the way their authors do. Other annotations
(``@approval``, ``@max_ttl``…) are kept: they become obligations when their
policy determines a permit.

Besides the whole policy set, each action the schema declares gets a policy set
of only the policies whose action scope can match it (``action`` alone, ``==``
that action, or ``in`` a list naming it or a group it belongs to; any scope not
understood goes everywhere). A policy left out cannot apply to that action nor
error on it — Cedar checks the scope before the conditions — so deciding on the
smaller set gives the same decision, reasons and errors, faster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import cedarpy

from tessera.errors import ValidationFailed
from tessera.policy.bundle import ENTITIES_FILE, Bundle, Problem
from tessera.policy.source import split_policies

ACTION_TYPE = "Action"


@dataclass(frozen=True, slots=True)
class PolicyMeta:
    id: str
    effect: str
    file: str
    line: int
    annotations: dict[str, str]


@dataclass(frozen=True)
class CompiledBundle:
    bundle: Bundle
    policy_set: Any
    schema: Any
    policies: dict[str, PolicyMeta]
    static_entities: list[dict[str, Any]] = field(default_factory=list)
    #: Action id → a policy set of only the policies that can apply to it (see the module doc).
    by_action: dict[str, Any] = field(default_factory=dict)
    #: The schema's ``Action`` entities with their groups, so ``action in Action::"group"``
    #: holds at decision time as it does in validation.
    action_entities: list[dict[str, Any]] = field(default_factory=list)

    @cached_property
    def version(self) -> str:
        # Hashing every file costs more than a decision: once per bundle, not per decision.
        return self.bundle.version

    def policy_set_for(self, action: str) -> Any:
        """The policies that can apply to ``Action::"action"``; all of them for an undeclared action."""
        return self.by_action.get(action, self.policy_set)


class BundleInvalid(ValidationFailed):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "invalid bundle"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().body())
        body["problems"] = [{"file": p.file, "line": p.line, "message": p.message} for p in self.problems]
        return body


def _parse_schema(bundle: Bundle, problems: list[Problem]) -> Any:
    name = bundle.schema_file
    text = bundle.schema_text
    if name is None or text is None:
        problems.append(Problem("schema.cedarschema", None, "missing schema"))
        return None
    try:
        if name.endswith(".json"):
            return cedarpy.Schema.from_json_str(text)
        return cedarpy.Schema.from_str(text)
    except ValueError as exc:
        problems.append(Problem(name, None, f"schema does not parse: {exc}"))
        return None


def _policies_of_file(
    name: str, text: str, problems: list[Problem]
) -> list[tuple[PolicyMeta, dict[str, Any]]]:
    found: list[tuple[PolicyMeta, dict[str, Any]]] = []
    on_line: dict[int, int] = {}
    for source in split_policies(text):
        # Without an @id, a policy is named by where it starts; a second one on that line gets "#2".
        nth = on_line[source.line] = on_line.get(source.line, 0) + 1
        where = f"{name}:{source.line}" + (f"#{nth}" if nth > 1 else "")
        try:
            est = json.loads(cedarpy.policies_to_json_str(source.text))
        except ValueError as exc:
            problems.append(Problem(name, source.line, str(exc)))
            continue
        static = est.get("staticPolicies", {})
        if est.get("templates"):
            problems.append(Problem(name, source.line, "policy templates are not supported in bundles"))
            continue
        for policy in static.values():
            annotations = {str(k): str(v) for k, v in (policy.get("annotations") or {}).items()}
            ttl = annotations.get("max_ttl")
            if ttl is not None and not (ttl.isascii() and ttl.isdigit() and int(ttl) > 0):
                # Caught here, not ignored when issuing: a cap that does not cap would widen access.
                problems.append(
                    Problem(
                        name, source.line, f"@max_ttl must be a positive number of seconds, not '{ttl[:40]}'"
                    )
                )
            policy_id = annotations.get("id") or where
            meta = PolicyMeta(policy_id, str(policy.get("effect")), name, source.line, annotations)
            found.append((meta, policy))
    return found


def _validate_file(
    name: str, text: str, schema: Any, metas: list[PolicyMeta], problems: list[Problem]
) -> None:
    """Validate one file; Cedar's positional ids (``policy3``) are reported as the policy's own id."""
    by_position = {f"policy{index}": meta for index, meta in enumerate(metas)}
    result = cedarpy.validate_policies(text, schema)
    for error in result.errors:
        meta = by_position.get(error.policy_id)
        message = error.error
        if meta is not None:
            message = message.replace(f"`{error.policy_id}`", f"`{meta.id}`")
        problems.append(Problem(name, meta.line if meta else None, message))


def compile_bundle(bundle: Bundle) -> CompiledBundle:
    """Parse, validate against the schema and index a bundle; raise ``BundleInvalid`` on any problem."""
    problems: list[Problem] = []
    schema = _parse_schema(bundle, problems)
    policies: dict[str, PolicyMeta] = {}
    static: dict[str, dict[str, Any]] = {}
    for name in bundle.policy_files:
        text = bundle.files[name]
        found = _policies_of_file(name, text, problems)
        for meta, est in found:
            if meta.id in policies:
                other = policies[meta.id]
                problems.append(
                    Problem(
                        name, meta.line, f"duplicate policy id '{meta.id}' (also {other.file}:{other.line})"
                    )
                )
                continue
            policies[meta.id] = meta
            static[meta.id] = est
        if schema is not None and not any(p.file == name for p in problems):
            _validate_file(name, text, schema, [meta for meta, _ in found], problems)
    entities: list[dict[str, Any]] = []
    try:
        entities = bundle.static_entities()
        if schema is not None and entities:
            cedarpy.Entities.from_json_str(json.dumps(entities), schema)
    except ValidationFailed as exc:
        # The message already names the file; a JSON syntax error also knows its line.
        line = getattr(exc.__cause__, "lineno", None)
        problems.append(Problem(ENTITIES_FILE, line, exc.description.removeprefix(f"{ENTITIES_FILE}: ")))
    except ValueError as exc:
        problems.append(Problem(ENTITIES_FILE, None, str(exc)))
    if problems:
        raise BundleInvalid(problems)
    policy_set = _policy_set(static)
    return CompiledBundle(
        bundle,
        policy_set,
        schema,
        policies,
        entities,
        _split_by_action(static, schema),
        action_entities(schema),
    )


def action_entities(schema: Any) -> list[dict[str, Any]]:
    """The ``Action`` entities a schema declares, each with its action-group parents."""
    if schema is None:
        return []
    try:
        declared = json.loads(str(cedarpy.Entities.from_json_str("[]", schema)))
    except ValueError:
        return []
    return [e for e in declared if e.get("uid", {}).get("type") == ACTION_TYPE]


def _policy_set(static: dict[str, dict[str, Any]]) -> Any:
    return cedarpy.PolicySet.from_json_str(
        json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
    )


def _action_groups(schema: Any) -> dict[str, set[str]]:
    """Each action the schema declares, with itself and every action group it is in, transitively."""
    try:
        declared = json.loads(str(cedarpy.Entities.from_json_str("[]", schema)))
    except ValueError:
        return {}  # no split: every action decides on the whole set
    parents = {
        e["uid"]["id"]: {p["id"] for p in e.get("parents", []) if p.get("type") == ACTION_TYPE}
        for e in declared
        if e["uid"]["type"] == ACTION_TYPE
    }
    groups: dict[str, set[str]] = {}
    for action in parents:
        seen, frontier = {action}, [action]
        while frontier:
            for parent in parents.get(frontier.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    frontier.append(parent)
        groups[action] = seen
    return groups


def _scope_actions(scope: Any) -> set[str] | None:
    """The action ids an action scope names, or ``None`` when it may match any action."""
    if not isinstance(scope, dict):
        return None
    op = scope.get("op")
    if op == "==":
        named = [scope.get("entity")]
    elif op == "in":
        named = scope["entities"] if isinstance(scope.get("entities"), list) else [scope.get("entity")]
    else:
        return None  # "All", or a form this does not know: kept for every action
    ids: set[str] = set()
    for entity in named:
        if not (isinstance(entity, dict) and entity.get("type") == ACTION_TYPE):
            return None
        if not isinstance(entity.get("id"), str):
            return None
        ids.add(entity["id"])
    return ids


def _split_by_action(static: dict[str, dict[str, Any]], schema: Any) -> dict[str, Any]:
    scopes = {policy_id: _scope_actions(est.get("action")) for policy_id, est in static.items()}
    split: dict[str, Any] = {}
    for action, groups in _action_groups(schema).items():
        subset = {
            policy_id: est
            for policy_id, est in static.items()
            if scopes[policy_id] is None or not groups.isdisjoint(scopes[policy_id] or ())
        }
        if len(subset) < len(static):
            split[action] = _policy_set(subset)
    return split
