"""The AuthZEN 1.0 certification scenario, every case, against a real server with the example bundle.

Basic, Batch and Search cases come from ``scenario.json`` (one entry per request the
scenario lists, named by its section); transport, header, idempotency, pagination
and Discovery cases need raw bodies, headers or earlier responses and are written out
below. Each runs as the harness does (anonymous, on a server configured like ``make
authzen-example``) and again with the admin credential and with an agent's DPoP token.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conformance.authzen.conftest import CERTIFICATION_ENV, Harness
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

SCENARIO = json.loads((Path(__file__).parent / "scenario.json").read_text())
CASES = SCENARIO["cases"]
ENDPOINTS = [
    "/access/v1/evaluation",
    "/access/v1/evaluations",
    "/access/v1/search/subject",
    "/access/v1/search/resource",
    "/access/v1/search/action",
]
RULE_1 = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "read"},
    "resource": {"type": "record", "id": "record-1"},
}
SEARCH_BODIES = {
    "/access/v1/search/subject": {**RULE_1, "subject": {"type": "user"}},
    "/access/v1/search/resource": {**RULE_1, "resource": {"type": "record"}},
    "/access/v1/search/action": {"subject": RULE_1["subject"], "resource": RULE_1["resource"]},
}
VALID_BODIES = {"/access/v1/evaluation": RULE_1, "/access/v1/evaluations": RULE_1, **SEARCH_BODIES}


def json_body(response: httpx.Response) -> dict[str, Any]:
    """c-5 (2): answers are ``application/json`` objects."""
    assert response.headers["content-type"].split(";")[0] == "application/json", response.headers
    body = response.json()
    assert isinstance(body, dict), body
    return body


def assert_bad_request(response: httpx.Response) -> None:
    """A 400 with Tessera's error shape: ``error`` and a one-line ``error_description`` string."""
    assert response.status_code == 400, (response.status_code, response.text)
    body = json_body(response)
    assert body["error"] == "invalid_request"
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert "\n" not in body["error_description"]


def assert_decision(item: Any) -> bool:
    """c-2-3: ``decision`` is a boolean; ``context``, if present, is an object."""
    assert isinstance(item, dict), item
    assert isinstance(item.get("decision"), bool), item
    assert isinstance(item.get("context", {}), dict), item
    decision: bool = item["decision"]
    return decision


def check_evaluations(case: dict[str, Any], body: dict[str, Any]) -> None:
    if "decision" in case:  # c-3-4-2, c-3-4-3: answered as a single evaluation
        assert "evaluations" not in body
        assert assert_decision(body) is case["decision"]
        return
    evaluations = body["evaluations"]
    assert isinstance(evaluations, list)
    assert len(evaluations) == len(case["request"]["evaluations"])  # c-3-3-1
    decisions = [assert_decision(item) for item in evaluations]  # c-3-3-3
    if "decisions" in case:
        assert decisions == case["decisions"]  # values and order, c-3-3-2
    assert "decision" not in body  # c-3-3-4: omitted when evaluations are returned


def check_search(case: dict[str, Any], body: dict[str, Any]) -> None:
    results = body["results"]
    assert isinstance(results, list)
    target = case["endpoint"].rsplit("/", 1)[1]
    if target == "action":
        names = [item["name"] for item in results]
        assert all(isinstance(name, str) for name in names)
    else:
        searched = case["request"][target]["type"]
        assert all(item["type"] == searched and isinstance(item["id"], str) for item in results)
        names = [item["id"] for item in results]
    assert set(case.get("includes", [])) <= set(names), names
    if "results" in case:
        assert results == case["results"]
    page = body.get("page")
    if page is not None:
        assert isinstance(page, dict)
        assert isinstance(page["next_token"], str)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['id']} {c['title']}" for c in CASES])
def test_scenario_case(harness: Harness, case: dict[str, Any]) -> None:
    response = harness.post(f"/access/v1/{case['endpoint']}", case["request"])
    if case["status"] == 400:
        assert_bad_request(response)
        return
    assert response.status_code == 200, response.text
    body = json_body(response)
    if case["endpoint"] == "evaluation":
        decision = assert_decision(body)
        if "decision" in case:
            assert decision is case["decision"]
    elif case["endpoint"] == "evaluations":
        check_evaluations(case, body)
    else:
        check_search(case, body)


def test_every_certification_sub_level_is_covered() -> None:
    """The Test ID Matrix: every section it lists has at least one case here or below."""
    matrix = {
        "basic-core": [
            "c-2-2-1",
            "c-2-2-2",
            "c-2-2-3",
            "c-2-2-8",
            "c-2-2-9",
            "c-2-4-1",
            "c-2-4-2",
            "c-2-4-6",
        ],
        "basic-properties": ["c-2-2-4", "c-2-2-5", "c-2-2-6", "c-2-2-7"],
        "batch-core": ["c-3-2-1", "c-3-2-2", "c-3-2-5", "c-3-2-6", "c-3-4-1", "c-3-4-2", "c-3-4-3"],
        "batch-properties": ["c-3-2-3", "c-3-2-4", "c-3-2-7"],
        "search-core": [
            *("c-4-2-1", "c-4-2-2", "c-4-2-3", "c-4-3-1", "c-4-3-2", "c-4-3-3"),
            *("c-4-4-1", "c-4-4-2", "c-4-6-1", "c-4-6-2", "c-4-7-1", "c-4-7-2"),
        ],
        "search-properties": ["c-4-2-4", "c-4-3-4", "c-4-4-3"],
    }
    for level, ids in matrix.items():
        present = {c["id"] for c in CASES if c["level"] == level}
        assert set(ids) <= present, (level, set(ids) - present)


# --- c-2-4: errors a JSON case cannot express -----------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None]
)
def test_c_2_4_3_the_content_type_must_be_json(harness: Harness, path: str, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    raw = json.dumps(VALID_BODIES[path]).encode()
    assert_bad_request(harness.post(path, headers=headers, raw=raw))


@pytest.mark.parametrize("path", ENDPOINTS)
def test_c_5_1_json_with_a_charset_is_json(harness: Harness, path: str) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = harness.post(path, VALID_BODIES[path], headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("raw", [b"{", b'{"subject": }', b"not json", b"[]", b"null"], ids=repr)
def test_c_2_4_4_malformed_json_is_400(harness: Harness, path: str, raw: bytes) -> None:
    assert_bad_request(harness.post(path, headers={"Content-Type": "application/json"}, raw=raw))


@pytest.mark.parametrize("path", ENDPOINTS)
def test_c_2_4_5_an_empty_body_is_400(harness: Harness, path: str) -> None:
    assert_bad_request(harness.post(path, headers={"Content-Type": "application/json"}, raw=b""))


# --- c-2-5: headers, c-2-6: idempotency -----------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_c_2_5_1_x_request_id_is_echoed(harness: Harness, path: str) -> None:
    request_id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    response = harness.post(path, VALID_BODIES[path], headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    failed = harness.post(path, {"foo": "bar"}, headers={"X-Request-ID": "req-400"})
    assert_bad_request(failed)
    assert failed.headers["x-request-id"] == "req-400"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_c_2_5_2_without_x_request_id_nothing_fails(harness: Harness, path: str) -> None:
    response = harness.post(path, VALID_BODIES[path])
    assert response.status_code == 200, response.text


def test_c_2_6_the_same_request_gets_the_same_decision(harness: Harness) -> None:
    decisions = {harness.post("/access/v1/evaluation", RULE_1).json()["decision"] for _ in range(5)}
    assert decisions == {True}
    denied = {**RULE_1, "subject": {"type": "user", "id": "bob"}, "action": {"name": "write"}}
    assert {harness.post("/access/v1/evaluation", denied).json()["decision"] for _ in range(5)} == {False}


# --- c-5: unknown fields in every kind of request -------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_c_5_5_unknown_fields_are_ignored_everywhere(harness: Harness, path: str) -> None:
    body = {
        **VALID_BODIES[path],
        "foo": "bar",
        "futureField": {"nested": True},
        "page": {"limit": 10, "x": 1},
    }
    with_unknown = harness.post(path, body)
    plain = harness.post(path, VALID_BODIES[path])
    assert with_unknown.status_code == plain.status_code == 200
    left, right = with_unknown.json(), plain.json()
    for answer in (left, right):
        if "context" in answer:
            answer["context"].pop("decision_id", None)
    assert left.get("decision") == right.get("decision")
    assert left.get("results") == right.get("results")


# --- c-4-5: pagination --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(SEARCH_BODIES))
def test_c_4_5_pages_with_a_limit_and_a_token(harness: Harness, path: str) -> None:
    body = SEARCH_BODIES[path]
    first = harness.post(path, {**body, "page": {"limit": 1}})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert isinstance(answer["results"], list)
    assert len(answer["results"]) <= 1
    page = answer["page"]
    assert isinstance(page, dict)
    assert isinstance(page["next_token"], str)
    seen = list(answer["results"])
    while page["next_token"]:
        follow = harness.post(path, {**body, "page": {"token": page["next_token"]}})
        assert follow.status_code == 200, follow.text
        answer = follow.json()
        page = answer["page"]
        assert isinstance(page, dict)
        assert isinstance(page["next_token"], str)
        seen += answer["results"]
        assert len(seen) < 50
    everything = harness.post(path, body).json()["results"]
    assert seen == everything
    assert len(seen) >= 1


# --- c-6: Discovery ----------------------------------------------------------------------------------


def test_c_6_metadata(harness: Harness) -> None:
    response = harness.get("/.well-known/authzen-configuration")
    assert response.status_code == 200
    metadata = json_body(response)
    base = harness.base
    assert metadata["policy_decision_point"] == base  # c-6-5: the base URL used for discovery
    parts = urlsplit(metadata["policy_decision_point"])
    assert (parts.query, parts.fragment) == ("", "")
    endpoints = {
        "access_evaluation_endpoint": "/access/v1/evaluation",
        "access_evaluations_endpoint": "/access/v1/evaluations",
        "search_subject_endpoint": "/access/v1/search/subject",
        "search_resource_endpoint": "/access/v1/search/resource",
        "search_action_endpoint": "/access/v1/search/action",
    }
    for name, path in endpoints.items():
        assert metadata[name] == f"{base}{path}"  # same scheme as the PDP; https behind TLS
    assert "signed_metadata" not in metadata
    capabilities = metadata.get("capabilities", [])
    assert isinstance(capabilities, list)
    assert all(isinstance(c, str) for c in capabilities)


def test_c_6_the_advertised_endpoints_answer(harness: Harness) -> None:
    metadata = harness.get("/.well-known/authzen-configuration").json()
    for name, body in [
        ("access_evaluation_endpoint", RULE_1),
        ("access_evaluations_endpoint", {**RULE_1, "evaluations": [{}]}),
        ("search_subject_endpoint", SEARCH_BODIES["/access/v1/search/subject"]),
        ("search_resource_endpoint", SEARCH_BODIES["/access/v1/search/resource"]),
        ("search_action_endpoint", SEARCH_BODIES["/access/v1/search/action"]),
    ]:
        path = metadata[name].removeprefix(harness.base)
        assert harness.post(path, body).status_code == 200, name


# --- Credentials -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_without_the_opt_in_credentials_are_required(authenticated: ServerProcess, path: str) -> None:
    response = httpx.post(
        f"{authenticated.url}{path}", json=VALID_BODIES[path], headers={"X-Request-ID": "r1"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.headers["x-request-id"] == "r1"
    assert httpx.get(f"{authenticated.url}/.well-known/authzen-configuration").status_code == 200


def test_the_makefile_target_runs_the_certification_configuration() -> None:
    """``make authzen-example`` runs ``tessera serve`` with the settings of the ``certification`` server."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[3]
    recipe = subprocess.run(
        [make, "-n", "-s", "authzen-example"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    relative = Path(CERTIFICATION_ENV["TESSERA_POLICY_BUNDLE"]).relative_to(root)
    assert f"TESSERA_POLICY_BUNDLE={relative}" in recipe
    assert "TESSERA_AUTHZEN_ALLOW_ANONYMOUS=true" in recipe
    assert "tessera serve" in recipe
