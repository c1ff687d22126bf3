"""``authorization_details`` (RFC 9396) of type ``agent_task``: what a task needs.

Example::

    [{"type": "agent_task", "task_id": "T-42", "purpose": "reconcile invoices",
      "resources": ["https://erp.example/invoices"], "actions": ["read"]}]

Unknown types, unknown fields and malformed values are refused with
``invalid_authorization_details`` (RFC 9396 §5).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tessera.errors import InvalidAuthorizationDetails

AGENT_TASK = "agent_task"
MAX_BYTES = 8192
MAX_ITEMS = 32
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
ACTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_FIELDS = {"type", "task_id", "purpose", "resources", "actions"}


def _string_list(detail: dict[str, Any], name: str, pattern: re.Pattern[str] | None) -> list[str]:
    value = detail.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_ITEMS or not all(isinstance(v, str) for v in value):
        raise InvalidAuthorizationDetails(
            f"agent_task '{name}' must be an array of at most {MAX_ITEMS} strings"
        )
    for item in value:
        if not item or len(item) > 512 or (pattern is not None and not pattern.fullmatch(item)):
            raise InvalidAuthorizationDetails(f"agent_task {name[:-1]} '{item[:60]}' is not valid")
    return list(dict.fromkeys(value))


def _agent_task(detail: dict[str, Any]) -> dict[str, Any]:
    unknown = set(detail) - _FIELDS
    if unknown:
        raise InvalidAuthorizationDetails(f"agent_task has unknown field '{sorted(unknown)[0][:40]}'")
    task_id = detail.get("task_id")
    if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
        raise InvalidAuthorizationDetails("agent_task needs a task_id of 1-128 characters [A-Za-z0-9._:/-]")
    purpose = detail.get("purpose")
    if not isinstance(purpose, str) or not purpose.strip() or len(purpose) > 500:
        raise InvalidAuthorizationDetails("agent_task needs a purpose of 1-500 characters")
    resources = _string_list(detail, "resources", None)
    for resource in resources:
        if any(c.isspace() for c in resource):
            raise InvalidAuthorizationDetails(f"agent_task resource '{resource[:60]}' is not valid")
    return {
        "type": AGENT_TASK,
        "task_id": task_id,
        "purpose": purpose.strip(),
        "resources": resources,
        "actions": _string_list(detail, "actions", ACTION),
    }


def parse_authorization_details(raw: str | None) -> list[dict[str, Any]]:
    """Parse the form parameter; returns normalised details (empty list if absent)."""
    if raw is None:
        return []
    if len(raw) > MAX_BYTES:
        raise InvalidAuthorizationDetails(f"authorization_details exceeds {MAX_BYTES} bytes")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidAuthorizationDetails("authorization_details is not valid json") from exc
    if not isinstance(value, list) or not value:
        raise InvalidAuthorizationDetails("authorization_details must be a non-empty json array")
    details: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise InvalidAuthorizationDetails("each authorization_details entry needs a string 'type'")
        if item["type"] != AGENT_TASK:
            raise InvalidAuthorizationDetails(f"unsupported authorization_details type '{item['type'][:40]}'")
        details.append(_agent_task(item))
    if len(details) > 1:
        raise InvalidAuthorizationDetails("at most one agent_task per token request")
    return details


def task_id_of(details: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str | None:
    """The ``task_id`` of the ``agent_task`` entry, if any."""
    for detail in details:
        if detail.get("type") == AGENT_TASK and isinstance(detail.get("task_id"), str):
            return str(detail["task_id"])
    return None
