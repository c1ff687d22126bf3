"""Policy tests: YAML cases run against a bundle, like unit tests for policy.

A test file (``tests/*.yaml`` in the bundle)::

    entities:                      # optional; added to the bundle's entities.json
      - uid: {type: Agent, id: fraud-bot}
        attrs: {name: fraud-bot, owner: ana@example.com, segment: payments,
                state: active, scopes: [], labels: []}
        parents: []
        tags: {role: fraud-detection}
    cases:
      - name: fraud bot reads an account under investigation
        principal: Agent::fraud-bot          # or {type: Agent, id: fraud-bot}
        action: read
        resource: Resource::account-1001
        context: {network_zone: corporate}   # over the defaults below
        expect: allow                        # allow | deny
        policies: [fraud-detection-reads-accounts-under-investigation]   # optional
        obligations: {}                      # optional

Default context: noon on a Wednesday, ``agent_state`` "active", ``risk`` 0, no
task, ``delegation_depth`` 0 (and an empty ``delegation`` and ``task``), ``network_zone``
"unknown", empty ``posture``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tessera.clock import ManualClock
from tessera.errors import ValidationFailed
from tessera.ids import SequentialIds
from tessera.policy.bundle import Bundle
from tessera.policy.compiled import compile_bundle
from tessera.policy.entities import EntityIndex, Uid
from tessera.policy.pdp import DecisionRequest, PolicyDecisionPoint

DEFAULT_CONTEXT: dict[str, Any] = {
    "time": {"hour": 12, "weekday": "Wed"},
    "agent_state": "active",
    "risk": 0,
    "risk_reasons": [],
    "approval_required": False,
    "task_id": "",
    "purpose": "",
    "task_resources": [],
    "delegation_depth": 0,
    "delegation": {"depth": 0, "actors": [], "subject": ""},
    "task": {"id": "", "purpose": "", "resources": [], "actions": [], "deadline": 0, "budget_remaining": -1},
    "network_zone": "unknown",
    "client_ip": "",
    "posture": {},
}


class TestFileError(ValidationFailed, ValueError):
    """A test file that cannot be run: reported with its name (a 400 from the admin API)."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    expected: str
    actual: str
    determining: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    message: str = ""


@dataclass
class TestReport:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and bool(self.results)


def parse_uid(value: Any, where: str) -> Uid:
    if isinstance(value, str) and '::"' in value and value.endswith('"'):
        type_, _, id_ = value.partition('::"')  # Type::"id", where the id may hold '::'
        return Uid(type_, id_[:-1])
    if isinstance(value, str) and "::" in value:
        type_, _, id_ = value.rpartition("::")
        return Uid(type_, id_)
    try:
        return Uid.from_json(value)
    except ValueError as exc:
        raise TestFileError(f"{where}: expected Type::id or {{type, id}}, got {str(value)[:60]}") from exc


def _load(name: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TestFileError(f"{name}: not valid yaml ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise TestFileError(f"{name}: expected a mapping with a 'cases' list")
    return data


def run_tests(bundle: Bundle) -> TestReport:
    """Run every case of every test file in ``bundle``; raises on an invalid bundle or test file."""
    compiled = compile_bundle(bundle)
    report = TestReport()
    for name in bundle.test_files:
        data = _load(name, bundle.files[name])
        index = EntityIndex()
        pdp = PolicyDecisionPoint(ManualClock(), SequentialIds(), index, timeout_ms=10_000)
        pdp.activate(compiled)
        extra = data.get("entities") or []
        if not isinstance(extra, list):
            raise TestFileError(f"{name}: 'entities' must be a list")
        try:
            index.set_resources(extra)
        except (KeyError, TypeError, ValueError) as exc:
            raise TestFileError(f"{name}: 'entities' must be entities with a uid {{type, id}}") from exc
        for number, case in enumerate(data["cases"], start=1):
            report.results.append(_run_case(pdp, name, number, case))
    return report


def _run_case(pdp: PolicyDecisionPoint, file: str, number: int, case: Any) -> CaseResult:
    where = f"{file} case {number}"
    if not isinstance(case, dict):
        raise TestFileError(f"{where}: a case must be a mapping")
    label = str(case.get("name") or where)
    expected = str(case.get("expect", "")).lower()
    if expected not in ("allow", "deny"):
        raise TestFileError(f"{where}: 'expect' must be allow or deny")
    for key, kind in (("context", dict), ("obligations", dict), ("policies", list)):
        if case.get(key) is not None and not isinstance(case[key], kind):
            raise TestFileError(f"{where}: '{key}' must be a {'mapping' if kind is dict else 'list'}")
    context = dict(DEFAULT_CONTEXT)
    context.update(case.get("context") or {})
    request = DecisionRequest(
        principal=parse_uid(case.get("principal"), f"{where} principal"),
        action=str(case.get("action", "")),
        resource=parse_uid(case.get("resource"), f"{where} resource"),
        context=context,
    )
    decision = pdp.decide(request)
    actual = "allow" if decision.allowed else "deny"
    problems: list[str] = []
    if actual != expected:
        problems.append(f"expected {expected}, got {actual}")
    wanted_policies = case.get("policies")
    if wanted_policies is not None and sorted(map(str, wanted_policies)) != sorted(decision.determining):
        problems.append(
            f"expected policies {sorted(map(str, wanted_policies))}, got {sorted(decision.determining)}"
        )
    wanted_obligations = case.get("obligations")
    if (
        wanted_obligations is not None
        and {str(k): str(v) for k, v in wanted_obligations.items()} != decision.obligations
    ):
        problems.append(f"expected obligations {wanted_obligations}, got {decision.obligations}")
    return CaseResult(
        file=file,
        name=label,
        passed=not problems,
        expected=expected,
        actual=actual,
        determining=decision.determining,
        errors=decision.errors,
        message="; ".join(problems),
    )
