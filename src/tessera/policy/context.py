"""The context the PDP adds to every request (all declared in the starter schema).

=================  ======================================================
``time``           ``{"hour": 0-23, "weekday": "Mon"…"Sun"}`` in UTC
``agent_state``    the principal agent's lifecycle state (or ``"unknown"``)
``risk``           the agent's risk score 0-100 (0 until detection exists)
``task_id``        the token's ``agent_task`` task id (``""`` if none)
``purpose``        the token's task purpose (``""`` if none)
``delegation_depth`` how many actors the token's delegation chain holds (0)
``delegation``     ``{"depth", "actors", "subject"}``: the RFC 8693 chain, actors
                   earliest first, and the chain's original subject (``""``)
``task``           ``{"id", "purpose", "resources", "actions", "deadline",
                   "budget_remaining"}`` of the token's registered task
                   (empty values, deadline 0 and budget -1 when there is none)
``network_zone``   the zone of ``client_ip`` in the configured CIDR table
``client_ip``      the address the request came from (``""`` if unknown)
``posture``        workload posture attributes passed by the PEP
=================  ======================================================

Values Tessera derives override what a caller passes under the same key, so a
PEP cannot claim a lower risk or another network zone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tessera.errors import ValidationFailed

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
UNKNOWN_ZONE = "unknown"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_zones(table: Mapping[str, str]) -> list[tuple[Network, str]]:
    zones: list[tuple[Network, str]] = []
    for cidr, zone in table.items():
        try:
            zones.append((ipaddress.ip_network(cidr, strict=False), zone))
        except ValueError as exc:
            raise ValidationFailed(f"invalid cidr '{cidr}' in the network zone table") from exc
    # Most specific first, so 10.1.0.0/16 wins over 10.0.0.0/8.
    zones.sort(key=lambda item: item[0].prefixlen, reverse=True)
    return zones


@dataclass(frozen=True, slots=True)
class Delegation:
    """A token's delegation chain (RFC 8693 §4.1 ``act``), as policy sees it."""

    depth: int = 0
    #: Earliest actor first; the last one is the agent presenting the token.
    actors: tuple[str, ...] = ()
    #: The chain's original subject (the person or upstream identity acted for).
    subject: str = ""

    def as_context(self) -> dict[str, Any]:
        return {"depth": int(self.depth), "actors": list(self.actors), "subject": self.subject}


def delegation_from_claims(claims: Mapping[str, Any], limit: int = 32) -> Delegation:
    """The chain a verified token's ``act`` claim names (outermost = the current actor)."""
    actors: list[str] = []
    act = claims.get("act")
    while isinstance(act, dict) and len(actors) < limit:
        actors.append(str(act.get("sub", "")))
        act = act.get("act")
    subject = claims.get("sub")
    return Delegation(len(actors), tuple(reversed(actors)), subject if isinstance(subject, str) else "")


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """A registered task's limits, as policy sees them (``context.task``)."""

    id: str = ""
    purpose: str = ""
    resources: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    #: Unix seconds; 0 when there is no task.
    deadline: int = 0
    #: Calls left; -1 when the task has no budget.
    budget_remaining: int = -1

    def as_context(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "purpose": self.purpose,
            "resources": list(self.resources),
            "actions": list(self.actions),
            "deadline": int(self.deadline),
            "budget_remaining": int(self.budget_remaining),
        }


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """What the caller's token says about the task and delegation."""

    task_id: str = ""
    purpose: str = ""
    delegation_depth: int = 0
    delegation: Delegation | None = None
    task: TaskFacts | None = None
    #: The token's ``tessera_approval`` authorization_details entry, if it was issued under one.
    approval: dict[str, Any] | None = None


class ContextBuilder:
    def __init__(self, zones: Mapping[str, str]) -> None:
        self._zones = parse_zones(zones)

    def zone_of(self, ip: str | None) -> str:
        if not ip:
            return UNKNOWN_ZONE
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return UNKNOWN_ZONE
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
            address = address.ipv4_mapped
        for network, zone in self._zones:
            if address.version == network.version and address in network:
                return zone
        return UNKNOWN_ZONE

    def build(
        self,
        supplied: Mapping[str, Any] | None,
        *,
        now: float,
        agent_state: str = "unknown",
        risk: int = 0,
        token: TokenFacts | None = None,
        client_ip: str | None = None,
    ) -> dict[str, Any]:
        context: dict[str, Any] = dict(supplied or {})
        moment = datetime.fromtimestamp(now, UTC)
        ip = context.get("client_ip") if isinstance(context.get("client_ip"), str) else client_ip
        facts = token or TokenFacts()
        context.update(
            time={"hour": moment.hour, "weekday": WEEKDAYS[moment.weekday()]},
            agent_state=agent_state,
            risk=int(risk),
            task_id=facts.task_id,
            purpose=facts.purpose,
            delegation_depth=int(facts.delegation.depth if facts.delegation else facts.delegation_depth),
            delegation=(facts.delegation or Delegation(depth=facts.delegation_depth)).as_context(),
            task=(facts.task or TaskFacts(id=facts.task_id, purpose=facts.purpose)).as_context(),
            network_zone=self.zone_of(ip),
            client_ip=ip or "",
        )
        posture = context.get("posture")
        context["posture"] = posture if isinstance(posture, dict) else {}
        return context
