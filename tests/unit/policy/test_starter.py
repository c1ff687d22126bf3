"""The starter bundle: its own tests pass, broken copies fail clearly, its examples behave as documented."""

from __future__ import annotations

import pytest

from tessera.audit.service import RequestContext
from tessera.identity.agents import Transition
from tessera.identity.service import NewAgent
from tessera.policy import testing
from tessera.policy.bundle import Bundle
from tessera.policy.compiled import BundleInvalid, compile_bundle
from tessera.policy.context import TokenFacts
from tessera.policy.decisions import Question
from tessera.policy.entities import Uid
from tessera.policy.pdp import Decision
from tessera.policy.service import starter_bundle
from tessera.policy.testing import run_tests
from tessera.runtime import Runtime
from tests.unit.policy.conftest import CORPORATE_IP, INTERNET_IP

STARTER_TESTS = "tests/starter.yaml"
FRAUD_CASE_EXPECTATION = (
    "    context: {network_zone: corporate, risk: 10}\n"
    "    expect: allow\n"
    "    policies: [fraud-detection-reads-accounts-under-investigation]\n"
)


def with_tests(text: str, name: str = STARTER_TESTS) -> Bundle:
    return Bundle({**starter_bundle().files, name: text})


def edited(old: str, new: str) -> Bundle:
    text = starter_bundle().files[STARTER_TESTS]
    assert text.count(old) == 1, old
    return with_tests(text.replace(old, new))


def test_the_starter_bundle_compiles_and_its_tests_pass() -> None:
    bundle = starter_bundle()
    compiled = compile_bundle(bundle)
    assert {
        "forbid-inactive-agents",
        "forbid-high-risk",
        "forbid-cross-segment",
        "fraud-detection-reads-accounts-under-investigation",
        "research-reads-task-records",
        "delete-production-needs-approval",
        "issue-tokens-within-registered-scopes",
    } <= set(compiled.policies)
    report = run_tests(bundle)
    assert report.ok, [r.message for r in report.results if not r.passed]
    assert report.failed == 0
    assert report.passed == len(report.results) >= 13


def test_a_changed_expectation_fails_with_a_clear_message() -> None:
    report = run_tests(edited(FRAUD_CASE_EXPECTATION, FRAUD_CASE_EXPECTATION.replace("allow", "deny")))
    assert not report.ok
    assert report.failed == 1
    failure = next(r for r in report.results if not r.passed)
    assert failure.file == STARTER_TESTS
    assert failure.name == "fraud detection reads an account under investigation from the corporate network"
    assert (failure.expected, failure.actual) == ("deny", "allow")
    assert failure.message == "expected deny, got allow"
    assert failure.determining == ("fraud-detection-reads-accounts-under-investigation",)


def test_a_wrong_determining_policy_fails_naming_both_lists() -> None:
    report = run_tests(edited("policies: [forbid-high-risk]", "policies: [forbid-cross-segment]"))
    assert report.failed == 1
    failure = next(r for r in report.results if not r.passed)
    assert failure.message == "expected policies ['forbid-cross-segment'], got ['forbid-high-risk']"


def test_a_wrong_obligation_fails_naming_both() -> None:
    report = run_tests(edited('obligations: {max_ttl: "300"}', 'obligations: {max_ttl: "600"}'))
    assert report.failed == 1
    failure = next(r for r in report.results if not r.passed)
    assert failure.message == "expected obligations {'max_ttl': '600'}, got {'max_ttl': '300'}"


def test_a_broken_policy_fails_the_run_before_any_case() -> None:
    files = dict(starter_bundle().files)
    files["tokens.cedar"] = files["tokens.cedar"].replace("containsAll", "containsEvery")
    with pytest.raises(BundleInvalid) as invalid:
        run_tests(Bundle(files))
    assert invalid.value.problems[0].file == "tokens.cedar"
    assert invalid.value.problems[0].line == 5  # where the policy starts: its @id
    assert "containsEvery" in invalid.value.problems[0].message


def test_a_weakened_policy_is_caught_by_the_starter_tests() -> None:
    files = dict(starter_bundle().files)
    files["guardrails.cedar"] = files["guardrails.cedar"].replace("context.risk >= 80", "context.risk >= 95")
    report = run_tests(Bundle(files))
    assert [r.name for r in report.results if not r.passed] == ["high risk is forbidden outright"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: [\n", "tests/starter.yaml: not valid yaml"),
        ("entities: []\n", "expected a mapping with a 'cases' list"),
        ("cases:\n  - principal: Agent::a\n    action: read\n    resource: Resource::r\n    expect: maybe\n",
         "case 1: 'expect' must be allow or deny"),
        ("cases:\n  - principal: alice\n    action: read\n    resource: Resource::r\n    expect: deny\n",
         "case 1 principal: expected Type::id"),
        ("cases:\n  - just a string\n", "case 1: a case must be a mapping"),
        ("entities: {a: 1}\ncases: []\n", "'entities' must be a list"),
        ("entities: [1]\ncases: []\n", "'entities' must be entities with a uid"),
        ("entities: [{uid: {type: X}}]\ncases: []\n", "'entities' must be entities with a uid"),
        ("cases:\n  - {principal: A::a, action: r, resource: R::r, expect: deny, context: [1]}\n",
         "case 1: 'context' must be a mapping"),
        ("cases:\n  - {principal: A::a, action: r, resource: R::r, expect: deny, obligations: [1]}\n",
         "case 1: 'obligations' must be a mapping"),
        ("cases:\n  - {principal: A::a, action: r, resource: R::r, expect: deny, policies: p}\n",
         "case 1: 'policies' must be a list"),
    ],
)  # fmt: skip
def test_a_malformed_test_file_is_reported_with_its_name(text: str, message: str) -> None:
    with pytest.raises(testing.TestFileError, match=r"^tests/starter\.yaml") as error:
        run_tests(with_tests(text))
    assert message in str(error.value)
    assert error.value.error == "invalid_request"  # the admin API answers 400, not 500


@pytest.mark.parametrize(
    ("written", "uid"),
    [
        ("Agent::fraud-bot", Uid("Agent", "fraud-bot")),
        ('Agent::"fraud-bot"', Uid("Agent", "fraud-bot")),
        ('Audience::"urn::odd::id"', Uid("Audience", "urn::odd::id")),
        ('Acme::Doc::"d1"', Uid("Acme::Doc", "d1")),
        ("Acme::Doc::d1", Uid("Acme::Doc", "d1")),
        ("Audience::https://api.example/x", Uid("Audience", "https://api.example/x")),
        ({"type": "Agent", "id": "a"}, Uid("Agent", "a")),
    ],
)
def test_test_cases_name_entities_as_cedar_does(written: object, uid: Uid) -> None:
    assert testing.parse_uid(written, "here") == uid


def test_a_bundle_without_cases_is_not_ok() -> None:
    files = {n: c for n, c in starter_bundle().files.items() if not n.startswith("tests/")}
    report = run_tests(Bundle(files))
    assert report.results == []
    assert not report.ok


# The documented examples, decided by a running Tessera for agents from its registry.


def register(runtime: Runtime, role: str, segment: str) -> str:
    agent = runtime.agents.create(
        NewAgent(name=f"{role} bot", owner="ana@example.com", attributes={"role": role}, segment=segment)
    )
    return agent.id


def decide(
    runtime: Runtime,
    agent_id: str,
    resource: str,
    *,
    action: str = "read",
    ip: str = CORPORATE_IP,
    context: dict[str, object] | None = None,
    token: TokenFacts | None = None,
) -> Decision:
    question = Question(Uid("Agent", agent_id), action, Uid("Resource", resource), context or {}, token=token)
    return runtime.decisions.decide([question], RequestContext(ip=ip))[0]


def test_fraud_detection_reads_accounts_under_investigation_from_the_corporate_network(
    zoned_runtime: Runtime,
) -> None:
    bot = register(zoned_runtime, "fraud-detection", "payments")
    allowed = decide(zoned_runtime, bot, "account-1001")
    assert allowed.allowed
    assert allowed.determining == ("fraud-detection-reads-accounts-under-investigation",)
    assert not decide(zoned_runtime, bot, "account-1002").allowed  # not under investigation
    assert not decide(zoned_runtime, bot, "account-1001", ip=INTERNET_IP).allowed
    # Claiming the zone does not help: Tessera derives it from the address.
    outside = decide(
        zoned_runtime, bot, "account-1001", ip=INTERNET_IP, context={"network_zone": "corporate"}
    )
    assert not outside.allowed
    assert not decide(zoned_runtime, bot, "account-1001", action="write").allowed  # default deny
    other_role = register(zoned_runtime, "research", "payments")
    assert not decide(zoned_runtime, other_role, "account-1001").allowed


def test_fraud_detection_is_forbidden_once_quarantined(zoned_runtime: Runtime) -> None:
    bot = register(zoned_runtime, "fraud-detection", "payments")
    assert decide(zoned_runtime, bot, "account-1001").allowed
    zoned_runtime.agents.transition(bot, Transition.QUARANTINE, "suspicious")
    decision = decide(zoned_runtime, bot, "account-1001", context={"agent_state": "active"})
    assert not decision.allowed
    assert decision.determining == ("forbid-inactive-agents",)


def test_research_reads_only_the_records_its_task_names(zoned_runtime: Runtime) -> None:
    bot = register(zoned_runtime, "research", "research")
    task = TokenFacts(task_id="T-42", purpose="literature review")
    named = {"task_resources": ["https://records.example/7"]}
    decision = decide(zoned_runtime, bot, "record-7", context=named, token=task)
    assert decision.allowed
    assert decision.determining == ("research-reads-task-records",)
    assert decision.obligations == {"max_ttl": "300"}
    assert not decide(zoned_runtime, bot, "record-8", context=named, token=task).allowed
    assert not decide(zoned_runtime, bot, "record-7", token=task).allowed  # the task names nothing
    cross = decide(zoned_runtime, bot, "account-1001", context={"task_resources": ["x"]})
    assert not cross.allowed


def test_micro_segmentation_forbids_another_segments_resources(zoned_runtime: Runtime) -> None:
    bot = register(zoned_runtime, "fraud-detection", "research")
    decision = decide(zoned_runtime, bot, "account-1001")
    assert not decision.allowed
    assert decision.determining == ("forbid-cross-segment",)
    zoned_runtime.resources.put(
        "Resource",
        "shared-account",
        {"segment": "payments", "kind": "account", "under_investigation": True,
         "shared_with_segments": ["research"]},
        [],
    )  # fmt: skip
    assert decide(zoned_runtime, bot, "shared-account").allowed


def test_deleting_production_data_carries_the_approval_obligation(zoned_runtime: Runtime) -> None:
    bot = register(zoned_runtime, "operator", "payments")
    zoned_runtime.resources.put(
        "Resource", "prod-db", {"segment": "payments", "classification": "production"}, []
    )
    # The permit is conditional: without an approval in the agent's token the answer is deny,
    # with the obligation kept so the PEP can send the agent to ask (docs/approvals.md).
    decision = decide(zoned_runtime, bot, "prod-db", action="delete")
    assert not decision.allowed
    assert decision.obligations == {"approval": "required"}
    assert any("approval is required" in e for e in decision.errors)
    question = Question(Uid("Agent", bot), "delete", Uid("Resource", "prod-db"))
    policy_answer = zoned_runtime.decisions.decide(
        [question], RequestContext(ip=CORPORATE_IP), enforce_approvals=False
    )[0]
    assert policy_answer.allowed
