"""``authorization_details`` of type ``agent_task`` (RFC 9396 §2, §5): parsing and refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tessera.errors import InvalidAuthorizationDetails
from tessera.tokens.authorization_details import MAX_BYTES, MAX_ITEMS, parse_authorization_details

TASK = {"type": "agent_task", "task_id": "T-42", "purpose": "reconcile invoices"}


def parse(value: Any) -> list[dict[str, Any]]:
    return parse_authorization_details(json.dumps(value))


def test_absent_means_none() -> None:
    assert parse_authorization_details(None) == []


def test_a_task_is_normalised() -> None:
    detail = {
        **TASK,
        "purpose": "  reconcile invoices ",
        "resources": ["https://erp.example/invoices", "https://erp.example/invoices"],
        "actions": ["read", "list"],
    }
    assert parse([detail]) == [
        {
            "type": "agent_task",
            "task_id": "T-42",
            "purpose": "reconcile invoices",
            "resources": ["https://erp.example/invoices"],
            "actions": ["read", "list"],
        }
    ]


def test_resources_and_actions_default_to_empty() -> None:
    assert parse([TASK])[0]["resources"] == []
    assert parse([TASK])[0]["actions"] == []


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([{"type": "payment_initiation", "task_id": "T"}], "unsupported authorization_details type"),
        ([{"type": "Agent_Task", **{k: v for k, v in TASK.items() if k != "type"}}], "unsupported"),
        ([{"task_id": "T-1", "purpose": "p"}], "needs a string 'type'"),
        ([{"type": 1}], "needs a string 'type'"),
        (["agent_task"], "needs a string 'type'"),
        ([{**TASK, "locations": ["https://x"]}], "unknown field 'locations'"),
        ([{**TASK, "privileges": ["admin"]}], "unknown field"),
        ([{k: v for k, v in TASK.items() if k != "task_id"}], "task_id"),
        ([{k: v for k, v in TASK.items() if k != "purpose"}], "purpose"),
        ([{**TASK, "purpose": "   "}], "purpose"),
        ([{**TASK, "purpose": "x" * 501}], "purpose"),
        ([{**TASK, "task_id": ""}], "task_id"),
        ([{**TASK, "task_id": "x" * 129}], "task_id"),
        ([{**TASK, "task_id": 42}], "task_id"),
        ([{**TASK, "task_id": "T 42"}], "task_id"),
        ([{**TASK, "task_id": "-T"}], "task_id"),
        ([{**TASK, "task_id": "T-42\n"}], "task_id"),
        ([{**TASK, "actions": ["read\n"]}], "action"),
        ([{**TASK, "actions": "read"}], "actions"),
        ([{**TASK, "actions": [1]}], "actions"),
        ([{**TASK, "actions": ["rm -rf"]}], "action"),
        ([{**TASK, "resources": ["https://a b"]}], "resource"),
        ([{**TASK, "resources": ["https://a\n"]}], "resource"),
        ([{**TASK, "resources": [""]}], "resource"),
        ([{**TASK, "resources": ["x" * 513]}], "resource"),
        ([{**TASK, "resources": ["r"] * (MAX_ITEMS + 1)}], "at most"),
        ([TASK, {**TASK, "task_id": "T-43"}], "at most one agent_task"),
        ([], "non-empty json array"),
        ({"type": "agent_task"}, "non-empty json array"),
        ("agent_task", "non-empty json array"),
    ],
)
def test_refusals(value: Any, match: str) -> None:
    with pytest.raises(InvalidAuthorizationDetails, match=match) as refused:
        parse(value)
    assert refused.value.error == "invalid_authorization_details"
    assert refused.value.status == 400


@pytest.mark.parametrize("raw", ["", "{", "[{]", "nul", "[1, 2", "\x00"])
def test_malformed_json_is_refused(raw: str) -> None:
    with pytest.raises(InvalidAuthorizationDetails, match="json"):
        parse_authorization_details(raw)


def test_oversized_input_is_refused_before_parsing() -> None:
    raw = json.dumps([{**TASK, "purpose": "p", "pad": "x" * MAX_BYTES}])
    with pytest.raises(InvalidAuthorizationDetails, match=f"exceeds {MAX_BYTES} bytes"):
        parse_authorization_details(raw)


def test_deep_nesting_is_a_clean_refusal() -> None:
    raw = "[" * (MAX_BYTES // 2) + "]" * (MAX_BYTES // 2)
    with pytest.raises(InvalidAuthorizationDetails):
        parse_authorization_details(raw)
