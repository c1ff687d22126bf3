"""The policy decision point: ``decide(principal, action, resource, context)`` with its reasons.

Semantics (Cedar's, made explicit):

- deny by default: no permit applies → deny;
- forbid beats permit;
- a policy that errors is skipped and reported — except a *forbid* that errors,
  which denies, since it might have applied (an error never widens access);
- an evaluation over its time budget denies;
- obligations are the annotations (other than ``@id``) of the permit policies
  that determined an allow: ``@approval("required")``, ``@max_ttl("60")``….
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from tessera.clock import Clock
from tessera.ids import IdGenerator
from tessera.policy.compiled import CompiledBundle
from tessera.policy.entities import EntityIndex, Uid

ACTION_TYPE = "Action"


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    principal: Uid
    action: str
    resource: Uid
    context: dict[str, Any] = field(default_factory=dict)
    #: Entities supplied with the request (AuthZEN ``properties``); they replace indexed ones.
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    decision_id: str
    policy_version: str
    determining: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    obligations: dict[str, str] = field(default_factory=dict)

    def explanation(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "policy_version": self.policy_version,
            "determining_policies": list(self.determining),
            "errors": list(self.errors),
            "obligations": dict(self.obligations),
        }


class NoPolicyLoaded(Exception):
    pass


def merge_obligations(annotation_sets: list[dict[str, str]]) -> dict[str, str]:
    """Combine obligations of several permits: the strictest wins where it can be told."""
    merged: dict[str, str] = {}
    for policy_annotations in annotation_sets:
        for key, value in policy_annotations.items():
            if key == "id":
                continue
            if key not in merged:
                merged[key] = value
            elif key.startswith("max_") and value.isdigit() and merged[key].isdigit():
                merged[key] = str(min(int(value), int(merged[key])))
            elif key == "approval" and value == "required":
                merged[key] = value
            elif key == "approvals_required" and value.isdigit() and merged[key].isdigit():
                merged[key] = str(max(int(value), int(merged[key])))
    return merged


class PolicyDecisionPoint:
    def __init__(
        self, clock: Clock, ids: IdGenerator, entities: EntityIndex, *, timeout_ms: float = 100.0
    ) -> None:
        self._clock = clock
        self._ids = ids
        self.entities = entities
        self._timeout = timeout_ms / 1000
        self._compiled: CompiledBundle | None = None
        self._lock = threading.Lock()

    @property
    def compiled(self) -> CompiledBundle:
        compiled = self._compiled
        if compiled is None:
            raise NoPolicyLoaded("no policy bundle is active")
        return compiled

    @property
    def version(self) -> str | None:
        return self._compiled.version if self._compiled else None

    def activate(self, compiled: CompiledBundle) -> None:
        """Swap the active bundle atomically; decisions in flight finish on the old one."""
        with self._lock:
            self.entities.set_static([*compiled.static_entities, *compiled.action_entities])
            self._compiled = compiled

    def _cedar_request(self, request: DecisionRequest) -> dict[str, Any]:
        return {
            "principal": request.principal.as_json(),
            "action": {"type": ACTION_TYPE, "id": request.action},
            "resource": request.resource.as_json(),
            "context": request.context,
        }

    def decide(self, request: DecisionRequest) -> Decision:
        return self.decide_batch([request])[0]

    def decide_batch(self, requests: list[DecisionRequest]) -> list[Decision]:
        compiled = self.compiled
        decisions: list[Decision] = []
        for request in requests:
            entities = json.dumps(
                self.entities.slice(
                    [request.principal, request.resource, Uid(ACTION_TYPE, request.action)], request.entities
                )
            )
            started = time.perf_counter()
            try:
                policy_set = compiled.policy_set_for(request.action)
                result = cedarpy.is_authorized(self._cedar_request(request), policy_set, entities)
            except (ValueError, TypeError) as exc:
                decisions.append(self._deny(compiled, (f"request could not be evaluated: {exc}",)))
                continue
            elapsed = time.perf_counter() - started
            decisions.append(self._decision(compiled, result, elapsed, entities))
        return decisions

    def _deny(
        self, compiled: CompiledBundle, errors: tuple[str, ...], determining: tuple[str, ...] = ()
    ) -> Decision:
        return Decision(False, self._ids.new("dec"), compiled.version, determining, errors)

    def _decision(self, compiled: CompiledBundle, result: Any, elapsed: float, entities: str) -> Decision:
        reasons = tuple(result.diagnostics.reasons)
        # Cedar quotes the whole entity slice when it cannot parse it; keep only the reason,
        # so explanations and audit records never carry other entities' attributes.
        errors = tuple(error.replace(entities, "<entities>") for error in result.diagnostics.errors)
        if elapsed > self._timeout:
            return self._deny(
                compiled, (*errors, f"evaluation took {elapsed * 1000:.1f} ms, over its budget")
            )
        erroring_forbids = [
            policy_id
            for policy_id, meta in (compiled.policies.items() if errors else ())
            if meta.effect == "forbid" and any(f"`{policy_id}`" in error for error in errors)
        ]
        if erroring_forbids:
            return self._deny(compiled, errors, tuple(erroring_forbids))
        if not result.allowed:
            return self._deny(compiled, errors, reasons)
        obligations = merge_obligations(
            [compiled.policies[r].annotations for r in reasons if r in compiled.policies]
        )
        return Decision(True, self._ids.new("dec"), compiled.version, reasons, errors, obligations)
