"""AuthZEN request parsing: the 400s the spec lists, defaults inheritance, search inputs and pages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tessera.errors import InvalidRequest
from tessera.policy.authzen_requests import (
    ACTION,
    DENY_ON_FIRST_DENY,
    EXECUTE_ALL,
    MAX_EVALUATIONS,
    RESOURCE,
    SUBJECT,
    EntityRef,
    Evaluation,
    load_request,
    parse_batch,
    parse_evaluation,
    parse_search,
)

ALICE = {"type": "user", "id": "alice"}
READ = {"name": "read"}
RECORD_1 = {"type": "record", "id": "record-1"}
VALID = {"subject": ALICE, "action": READ, "resource": RECORD_1}


def body(**changes: Any) -> dict[str, Any]:
    out = {**VALID, **changes}
    return {k: v for k, v in out.items() if v is not ...}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "request body is empty"),
        (b"  \n", "request body is empty"),
        (b"{", "request body is not valid json"),
        (b"{'subject': 1}", "request body is not valid json"),
        (b"[1, 2]", "request body must be a json object"),
        (b'"text"', "request body must be a json object"),
        (b"\xff\xfe", "request body is not utf-8"),
        (b'{"a": 1, "a": 2}', "duplicate member 'a'"),
        (b'{"a": NaN}', "'NaN' is not a json number"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        load_request(raw)
    assert caught.value.status == 400
    assert "\n" not in caught.value.description


def test_a_json_object_is_loaded() -> None:
    assert load_request(json.dumps(VALID).encode()) == VALID


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": ...}, "missing required field 'subject'"),
        ({"action": ...}, "missing required field 'action'"),
        ({"resource": ...}, "missing required field 'resource'"),
        ({"subject": None}, "missing required field 'subject'"),
        ({"subject": {"id": "alice"}}, "subject: missing required field 'type'"),
        ({"subject": {"type": "user"}}, "subject: missing required field 'id'"),
        ({"action": {}}, "action: missing required field 'name'"),
        ({"resource": {"id": "record-1"}}, "resource: missing required field 'type'"),
        ({"resource": {"type": "record"}}, "resource: missing required field 'id'"),
        ({"subject": "alice"}, "subject must be an object"),
        ({"action": "read"}, "action must be an object"),
        ({"resource": ["record-1"]}, "resource must be an object"),
        ({"action": {"name": 123}}, "action.name must be a string"),
        ({"subject": {"type": 1, "id": "alice"}}, "subject.type must be a string"),
        ({"subject": {"type": "user", "id": 7}}, "subject.id must be a string"),
        ({"subject": {**ALICE, "properties": []}}, "subject.properties must be an object"),
        ({"action": {"name": "read", "properties": "soft"}}, "action.properties must be an object"),
        ({"context": "now"}, "context must be an object"),
    ],
)
def test_evaluation_requests_missing_or_mistyped_members_are_400(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_evaluation(body(**changes))


def test_unknown_members_are_ignored_and_null_is_absent() -> None:
    parsed = parse_evaluation(
        body(
            foo="bar",
            futureField={"nested": True},
            context=None,
            subject={**ALICE, "properties": None, "extra": 1},
        )
    )
    assert parsed == Evaluation(EntityRef("user", "alice"), parsed.action, EntityRef("record", "record-1"))
    assert parsed.context == {}
    assert parsed.action.name == "read"
    assert parsed.action.properties == {}


def test_properties_and_context_are_kept() -> None:
    parsed = parse_evaluation(
        body(
            subject={**ALICE, "properties": {"role": "admin"}},
            action={"name": "delete", "properties": {"soft": True}},
            context={"time": "2025-06-27T18:03-07:00"},
        )
    )
    assert parsed.subject.properties == {"role": "admin"}
    assert parsed.action.properties == {"soft": True}
    assert parsed.context == {"time": "2025-06-27T18:03-07:00"}


# --- Access Evaluations (§7) -------------------------------------------------------------


@pytest.mark.parametrize("evaluations", [..., [], None])
def test_without_evaluations_the_batch_is_a_single_evaluation(evaluations: Any) -> None:
    batch = parse_batch(body(evaluations=evaluations))
    assert batch.single == parse_evaluation(VALID)
    assert batch.items == ()


def test_without_evaluations_the_single_evaluation_needs_every_member() -> None:
    with pytest.raises(InvalidRequest, match="missing required field 'resource'"):
        parse_batch(body(resource=..., evaluations=[]))


def test_defaults_are_inherited_and_replaced_whole() -> None:
    archived = {"type": "record", "id": "record-2", "properties": {"status": "archived"}}
    batch = parse_batch(
        {
            "subject": ALICE,
            "action": {"name": "write"},
            "resource": {**RECORD_1, "properties": {"status": "active"}},
            "context": {"time": "t1"},
            "evaluations": [
                {},
                {"resource": archived},
                {"action": {"name": "read"}, "context": {"source": "override"}},
            ],
        }
    )
    first, second, third = batch.items
    assert isinstance(first, Evaluation)
    assert isinstance(second, Evaluation)
    assert isinstance(third, Evaluation)
    assert first.resource == EntityRef("record", "record-1", {"status": "active"})
    assert first.action.name == "write"
    assert first.context == {"time": "t1"}
    assert second.resource == EntityRef("record", "record-2", {"status": "archived"})
    assert second.subject == EntityRef("user", "alice")
    assert third.action.name == "read"
    assert third.context == {"source": "override"}  # replaced, not merged
    assert batch.semantic == EXECUTE_ALL


def test_fully_specified_evaluations_need_no_defaults() -> None:
    batch = parse_batch({"evaluations": [VALID, {**VALID, "subject": {"type": "user", "id": "bob"}}]})
    assert [item.subject.id for item in batch.items if isinstance(item, Evaluation)] == ["alice", "bob"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({}, "evaluations[1]: missing required field 'resource' and no top-level default"),
        ({"resource": {"type": "record"}}, "evaluations[1].resource: missing required field 'id'"),
        ({"resource": "record-2"}, "evaluations[1].resource must be an object"),
        ({"resource": RECORD_1, "context": 3}, "evaluations[1].context must be an object"),
    ],
)
def test_a_bad_item_fails_alone(item: dict[str, Any], message: str) -> None:
    batch = parse_batch(
        {
            "subject": ALICE,
            "action": READ,
            "evaluations": [{"resource": RECORD_1}, item, {"resource": RECORD_1}],
        }
    )
    first, failed, last = batch.items
    assert isinstance(first, Evaluation)
    assert isinstance(last, Evaluation)
    assert isinstance(failed, InvalidRequest)
    assert failed.description == message


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"evaluations": {"resource": RECORD_1}}, "evaluations must be an array"),
        ({"evaluations": ["x"]}, r"evaluations\[0\] must be an object"),
        ({**VALID, "evaluations": [{}], "options": []}, "options must be an object"),
        (
            {**VALID, "evaluations": [{}], "options": {"evaluations_semantic": "first"}},
            "options.evaluations_semantic must be one of execute_all, deny_on_first_deny",
        ),
        ({"subject": "alice", "evaluations": [VALID]}, "subject must be an object"),
        ({"action": {}, "evaluations": [VALID]}, "action: missing required field 'name'"),
        ({"evaluations": [{}] * (MAX_EVALUATIONS + 1)}, "more than 1000 items"),
    ],
)
def test_payload_level_problems_are_400(request_body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_batch(request_body)


def test_the_semantic_and_unknown_options_are_read() -> None:
    batch = parse_batch(
        {**VALID, "evaluations": [{}], "options": {"evaluations_semantic": DENY_ON_FIRST_DENY, "x": 1}}
    )
    assert batch.semantic == DENY_ON_FIRST_DENY


# --- Search (§8) -------------------------------------------------------------------------------


def test_the_searched_entity_needs_only_a_type_and_its_id_is_ignored() -> None:
    subject_search = parse_search({"subject": ALICE, "action": READ, "resource": RECORD_1}, SUBJECT)
    assert subject_search.subject == EntityRef("user", None)
    resource_search = parse_search({"subject": ALICE, "action": READ, "resource": RECORD_1}, RESOURCE)
    assert resource_search.resource == EntityRef("record", None)
    assert resource_search.subject == EntityRef("user", "alice")


def test_action_search_ignores_an_action() -> None:
    parsed = parse_search({"subject": ALICE, "action": {"name": "x"}, "resource": RECORD_1}, ACTION)
    assert parsed.action is None


@pytest.mark.parametrize(
    ("target", "request_body", "message"),
    [
        (SUBJECT, {"subject": {"type": "user"}, "resource": RECORD_1}, "missing required field 'action'"),
        (RESOURCE, {"action": READ, "resource": {"type": "record"}}, "missing required field 'subject'"),
        (ACTION, {"subject": ALICE}, "missing required field 'resource'"),
        (
            SUBJECT,
            {"subject": {"type": "user"}, "action": READ, "resource": {"type": "record"}},
            "resource: missing required field 'id'",
        ),
        (
            RESOURCE,
            {"subject": {"type": "user"}, "action": READ, "resource": {"type": "record"}},
            "subject: missing required field 'id'",
        ),
        (ACTION, {"subject": {"type": "user"}, "resource": RECORD_1}, "subject: missing required field 'id'"),
        (
            SUBJECT,
            {"subject": {"id": "a"}, "action": READ, "resource": RECORD_1},
            "missing required field 'type'",
        ),
        (SUBJECT, {**VALID, "page": 1}, "page must be an object"),
        (SUBJECT, {**VALID, "page": {"limit": -1}}, "page.limit must be a non-negative integer"),
        (SUBJECT, {**VALID, "page": {"limit": True}}, "page.limit must be a non-negative integer"),
        (SUBJECT, {**VALID, "page": {"limit": 1.5}}, "page.limit must be a non-negative integer"),
        (SUBJECT, {**VALID, "page": {"token": 5}}, "page.token must be a string"),
    ],
)
def test_search_requests_are_checked_per_endpoint(
    target: str, request_body: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_search(request_body, target)


def test_pages_are_read() -> None:
    parsed = parse_search({**VALID, "page": {"limit": 2, "token": "abc", "properties": {}}}, SUBJECT)
    assert (parsed.limit, parsed.token) == (2, "abc")
    assert parse_search({**VALID, "page": {"token": ""}}, SUBJECT).token is None
