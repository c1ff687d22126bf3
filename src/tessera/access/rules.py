"""Who approves, how many, for how long: read from a decision's obligations.

Policy annotations (see docs/policies.md):

====================================  =========================================================
``@approval("payments-approvers")``   a person must approve; the first approver group
``@approval("owner")``                the resource's ``owner`` attribute (``user:<owner>``)
``@approval("required")``             the default approver group (``TESSERA_APPROVAL_DEFAULT_GROUP``)
``@approvals_required("2")``          two-person rule: that many distinct approvers
``@approval_separation("owner")``     the agent's owner may not approve its request
``@escalate_after("900")``            seconds before the next group is asked as well
``@escalate_to("security,cto")``      the next groups, in order
``@approval_timeout("3600")``         seconds before an unanswered request expires
``@max_ttl("600")``                   the longest grant (seconds)
====================================  =========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tessera.identity.people import GROUP

MAX_APPROVERS = 5
SEPARATIONS = frozenset({"owner"})


@dataclass(frozen=True, slots=True)
class ApprovalDefaults:
    default_group: str
    escalation_groups: tuple[str, ...]
    escalate_after: int | None
    timeout: int
    grant_ttl: int
    grant_max_ttl: int


@dataclass(frozen=True, slots=True)
class ApprovalRules:
    groups: tuple[str, ...]
    approvals_required: int
    separation: str | None
    escalate_after: int | None
    timeout: int
    max_ttl: int


def _seconds(value: str | None, fallback: int | None) -> int | None:
    if value is None:
        return fallback
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) <= 30 * 86400 else fallback


def needs_approval(obligations: Mapping[str, str]) -> bool:
    return bool(obligations.get("approval", "").strip())


def approval_rules(
    obligations: Mapping[str, str], defaults: ApprovalDefaults, resource_owner: str | None = None
) -> ApprovalRules:
    """The rules for one request; malformed annotation values fall back to the defaults."""
    wanted = obligations.get("approval", "required").strip()
    if wanted == "owner" and resource_owner:
        first = f"user:{resource_owner}"
    elif wanted in ("required", "owner") or not GROUP.fullmatch(wanted):
        first = defaults.default_group
    else:
        first = wanted
    escalate_to = obligations.get("escalate_to")
    later = (
        tuple(g.strip() for g in escalate_to.split(",") if GROUP.fullmatch(g.strip()))
        if escalate_to is not None
        else defaults.escalation_groups
    )
    groups = tuple(dict.fromkeys((first, *later)))
    required = _seconds(obligations.get("approvals_required"), 1) or 1
    separation = obligations.get("approval_separation", "").strip() or None
    max_ttl = _seconds(obligations.get("max_ttl"), defaults.grant_max_ttl) or defaults.grant_max_ttl
    return ApprovalRules(
        groups=groups,
        approvals_required=min(required, MAX_APPROVERS),
        separation=separation if separation in SEPARATIONS else ("owner" if separation else None),
        escalate_after=_seconds(obligations.get("escalate_after"), defaults.escalate_after),
        timeout=_seconds(obligations.get("approval_timeout"), defaults.timeout) or defaults.timeout,
        max_ttl=min(max_ttl, defaults.grant_max_ttl),
    )


def grant_ttl(asked: int | None, rules_max: int, default: int) -> int:
    """The grant's lifetime: what was asked (or the default), never over the maximum."""
    return max(1, min(asked or default, rules_max))
