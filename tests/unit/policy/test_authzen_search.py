"""AuthZEN search: candidates, results, empty results, pages and their tokens, the action catalogue."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import InvalidRequest
from tessera.policy.authzen_requests import ACTION, RESOURCE, SUBJECT, parse_search
from tessera.policy.authzen_search import AuthZenSearch, bundle_actions
from tessera.policy.bundle import Bundle
from tessera.policy.compiled import CompiledBundle
from tessera.runtime import Runtime
from tests.unit.helpers import register, request_token
from tests.unit.policy.authzen_support import authzen_service, decision_records, start_example_runtime

CALLER = RequestContext(ip="192.0.2.10")
ALICE = {"type": "user", "id": "alice"}
BOB_ADMIN = {"type": "user", "id": "bob", "properties": {"role": "admin"}}
READ = {"name": "read"}
WRITE = {"name": "write"}
RECORD_1 = {"type": "record", "id": "record-1"}
ARCHIVED_2 = {"type": "record", "id": "record-2", "properties": {"status": "archived"}}


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    yield from start_example_runtime(settings, clock)


@pytest.fixture
def search(runtime: Runtime) -> AuthZenSearch:
    return AuthZenSearch(authzen_service(runtime))


def find(search: AuthZenSearch, target: str, **body: Any) -> dict[str, Any]:
    return search.search(parse_search(body, target), CALLER)


def ids(answer: dict[str, Any]) -> list[str]:
    return [item.get("id") or item["name"] for item in answer["results"]]


CASES = [
    (
        "S1 subject search",
        SUBJECT,
        {"subject": {"type": "user"}, "action": READ, "resource": RECORD_1},
        ["alice", "bob"],
    ),
    (
        "subject id ignored",
        SUBJECT,
        {"subject": ALICE, "action": READ, "resource": RECORD_1},
        ["alice", "bob"],
    ),
    ("S4 archived", SUBJECT, {"subject": {"type": "user"}, "action": WRITE, "resource": ARCHIVED_2}, ["bob"]),
    (
        "S2 resource search",
        RESOURCE,
        {"subject": ALICE, "action": READ, "resource": {"type": "record"}},
        ["record-1", "record-2"],
    ),
    (
        "resource id ignored",
        RESOURCE,
        {"subject": ALICE, "action": READ, "resource": RECORD_1},
        ["record-1", "record-2"],
    ),
    (
        "S5 admin writes",
        RESOURCE,
        {"subject": BOB_ADMIN, "action": WRITE, "resource": {"type": "record"}},
        ["record-2"],
    ),
    ("S3 action search", ACTION, {"subject": ALICE, "resource": RECORD_1}, ["read", "write"]),
    ("S6 admin on archived", ACTION, {"subject": BOB_ADMIN, "resource": ARCHIVED_2}, ["read", "write"]),
    (
        "unknown subject",
        ACTION,
        {"subject": {"type": "user", "id": "nonexistent-user"}, "resource": RECORD_1},
        [],
    ),
    ("unknown type", SUBJECT, {"subject": {"type": "spaceship"}, "action": READ, "resource": RECORD_1}, []),
    (
        "unknown resource type",
        RESOURCE,
        {"subject": ALICE, "action": READ, "resource": {"type": "planet"}},
        [],
    ),
    (
        "not a cedar type",
        SUBJECT,
        {"subject": {"type": "no such type"}, "action": READ, "resource": RECORD_1},
        [],
    ),
    (
        "unknown action",
        SUBJECT,
        {"subject": {"type": "user"}, "action": {"name": "fly"}, "resource": RECORD_1},
        [],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_search_results(search: AuthZenSearch, case: tuple[str, str, dict[str, Any], list[str]]) -> None:
    _, target, body, expected = case
    answer = find(search, target, **body)
    assert ids(answer) == expected
    assert answer["page"] == {"next_token": "", "count": len(expected)}
    if target != ACTION:
        searched = body[target]["type"]
        assert all(item["type"] == searched for item in answer["results"])


def test_context_does_not_change_the_results(search: AuthZenSearch) -> None:
    context = {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}
    body = {"subject": {"type": "user"}, "action": READ, "resource": RECORD_1}
    assert find(search, SUBJECT, **body, context=context) == find(search, SUBJECT, **body)


def test_each_candidate_decision_is_recorded(runtime: Runtime, search: AuthZenSearch) -> None:
    before = len(decision_records(runtime))
    find(search, SUBJECT, subject={"type": "user"}, action=READ, resource=RECORD_1)
    assert len(decision_records(runtime)) == before + 2


@pytest.mark.parametrize(
    ("target", "body", "message"),
    [
        (
            SUBJECT,
            {"subject": {"type": "user"}, "action": READ, "resource": {"type": "bad type", "id": "r"}},
            "resource: invalid entity type",
        ),
        (
            RESOURCE,
            {"subject": {"type": "user", "id": ""}, "action": READ, "resource": {"type": "record"}},
            "subject: entity id",
        ),
        (
            SUBJECT,
            {"subject": {"type": "user"}, "action": {"name": ""}, "resource": RECORD_1},
            "action.name must be",
        ),
        (
            SUBJECT,
            {
                "subject": {"type": "user"},
                "action": READ,
                "resource": RECORD_1,
                "context": {"access_token": "x"},
            },
            "no place in a subject search",
        ),
        (
            RESOURCE,
            {
                "subject": ALICE,
                "action": READ,
                "resource": {"type": "record"},
                "context": {"access_token": 1},
            },
            "must be a string",
        ),
    ],
)
def test_inputs_are_checked_even_when_nothing_matches(
    search: AuthZenSearch, target: str, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        find(search, target, **body)


def test_the_agents_token_narrows_a_resource_search(runtime: Runtime, search: AuthZenSearch) -> None:
    pep = register(runtime, scopes=("authzen",))
    token = request_token(runtime, pep, scope="authzen").access_token
    agent = {"type": "Agent", "id": pep.id}
    body = {
        "subject": agent,
        "action": READ,
        "resource": {"type": "record"},
        "context": {"access_token": token},
    }
    assert find(search, RESOURCE, **body)["results"] == []  # agents read nothing under this bundle
    forged = find(search, RESOURCE, **{**body, "context": {"access_token": "a.b.c"}})
    assert forged["results"] == []
    assert forged["context"]["error"]["status"] == 401
    assert token not in json.dumps(forged)


# --- Pagination -----------------------------------------------------------------------------------------

SUBJECTS = {"subject": {"type": "user"}, "action": READ, "resource": RECORD_1}


def test_pages_walk_the_results_with_opaque_tokens(search: AuthZenSearch) -> None:
    first = find(search, SUBJECT, **SUBJECTS, page={"limit": 1})
    assert ids(first) == ["alice"]
    token = first["page"]["next_token"]
    assert isinstance(token, str)
    assert token
    assert first["page"]["count"] == 1
    # the follow-up may omit the limit (the token carries it), as the certification harness does
    second = find(search, SUBJECT, **SUBJECTS, page={"token": token})
    assert ids(second) == ["bob"]
    assert second["page"] == {"next_token": "", "count": 1}


def test_a_page_of_exactly_the_remaining_results_ends(search: AuthZenSearch) -> None:
    answer = find(search, SUBJECT, **SUBJECTS, page={"limit": 2})
    assert ids(answer) == ["alice", "bob"]
    assert answer["page"]["next_token"] == ""


def test_limit_zero_means_the_default_page(search: AuthZenSearch) -> None:
    assert ids(find(search, SUBJECT, **SUBJECTS, page={"limit": 0})) == ["alice", "bob"]


def test_action_search_pages_too(search: AuthZenSearch) -> None:
    first = find(search, ACTION, subject=ALICE, resource=RECORD_1, page={"limit": 1})
    second = find(
        search, ACTION, subject=ALICE, resource=RECORD_1, page={"token": first["page"]["next_token"]}
    )
    assert (ids(first), ids(second)) == (["read"], ["write"])


def test_a_token_is_bound_to_its_request(search: AuthZenSearch) -> None:
    token = find(search, SUBJECT, **SUBJECTS, page={"limit": 1})["page"]["next_token"]
    changed = {**SUBJECTS, "resource": {"type": "record", "id": "record-2"}}
    with pytest.raises(InvalidRequest, match="belongs to a search with other entities or context"):
        find(search, SUBJECT, **changed, page={"token": token})
    with pytest.raises(InvalidRequest, match="belongs to a search"):
        find(search, SUBJECT, **SUBJECTS, context={"x": 1}, page={"token": token})


@pytest.mark.parametrize(
    "token",
    ["%%%", "bm90IGpzb24", base64.urlsafe_b64encode(b'{"a": 1, "l": 1, "f": "x"}').decode(), "e30"],
)
def test_tokens_the_server_did_not_issue_are_400(search: AuthZenSearch, token: str) -> None:
    with pytest.raises(InvalidRequest, match=r"page\.token"):
        find(search, SUBJECT, **SUBJECTS, page={"token": token})


def test_many_candidates_are_decided_in_chunks(runtime: Runtime, search: AuthZenSearch) -> None:
    for number in range(150):
        runtime.resources.put("record", f"r-{number:03d}", {"status": "active"}, [])
    first = find(
        search, RESOURCE, subject=ALICE, action=WRITE, resource={"type": "record"}, page={"limit": 100}
    )
    assert len(first["results"]) == 100
    rest = find(
        search,
        RESOURCE,
        subject=ALICE,
        action=WRITE,
        resource={"type": "record"},
        page={"token": first["page"]["next_token"]},
    )
    assert ids(rest)[-1] == "record-1"  # record-2 is archived
    assert len(first["results"]) + len(rest["results"]) == 151
    assert rest["page"]["next_token"] == ""
    everything = find(
        search, RESOURCE, subject=ALICE, action=WRITE, resource={"type": "record"}, page={"limit": 5000}
    )
    assert everything["page"]["count"] == 151


def test_candidates_cedar_cannot_name_are_skipped(runtime: Runtime, search: AuthZenSearch) -> None:
    runtime.entities.set_resources([{"uid": {"type": "record", "id": ""}, "attrs": {}, "parents": []}])
    assert ids(find(search, RESOURCE, subject=ALICE, action=READ, resource={"type": "record"})) == [
        "record-1",
        "record-2",
    ]


# --- Action candidates -------------------------------------------------------------------------------


def test_action_candidates_come_from_the_schema_policies_and_action_entities(
    runtime: Runtime, search: AuthZenSearch
) -> None:
    assert search.actions() == ("delete", "issue_token", "read", "write")
    runtime.entities.set_resources([{"uid": {"type": "Action", "id": "archive"}, "attrs": {}, "parents": []}])
    assert search.actions() == ("archive", "delete", "issue_token", "read", "write")


SCHEMA_TEXT = """
// action commented, out appliesTo {};
entity user { action: String, "action": Long };
action "view doc", edit appliesTo { principal: [user], resource: [user] };
action share;
"""


def unchecked(bundle: Bundle) -> CompiledBundle:
    """Only the files matter to ``bundle_actions``; these need not validate."""
    return CompiledBundle(bundle, None, None, {})


def test_bundle_actions_reads_text_and_json_schemas() -> None:
    policies = (
        'permit (principal, action in [Action::"approve", Action::"view doc"], resource);\n'
        'forbid (principal, action == Action::"purge", resource);\n'
        "permit (principal, action, resource);\n"
    )
    text = unchecked(Bundle({"schema.cedarschema": SCHEMA_TEXT, "p.cedar": policies}))
    assert bundle_actions(text) == ("approve", "edit", "share", "view doc")
    schema_json = json.dumps({"": {"entityTypes": {"user": {}}, "actions": {"read": {}, "list": {}}}})
    as_json = unchecked(
        Bundle({"schema.cedarschema.json": schema_json, "p.cedar": "permit (principal, action, resource);"})
    )
    assert bundle_actions(as_json) == ("list", "read")
