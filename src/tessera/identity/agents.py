"""The agent record and its lifecycle.

An agent's id is also its OAuth ``client_id``. Lifecycle::

    active ──suspend──► suspended ──resume──► active
    active|suspended ──quarantine──► quarantined ──release──► active
    any ──decommission──► decommissioned (terminal; the record stays)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from tessera.errors import Conflict, ValidationFailed

# Always used with fullmatch: '$' would also match before a trailing newline.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §3.3 scope-token
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
ATTRIBUTE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
RESOURCE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s#]+")
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_VALUE = 1024


class LifecycleState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    QUARANTINED = "quarantined"
    DECOMMISSIONED = "decommissioned"


class Transition(StrEnum):
    SUSPEND = "suspend"
    RESUME = "resume"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    DECOMMISSION = "decommission"


_ALLOWED: dict[Transition, tuple[frozenset[LifecycleState], LifecycleState]] = {
    Transition.SUSPEND: (frozenset({LifecycleState.ACTIVE}), LifecycleState.SUSPENDED),
    Transition.RESUME: (frozenset({LifecycleState.SUSPENDED}), LifecycleState.ACTIVE),
    Transition.QUARANTINE: (
        frozenset({LifecycleState.ACTIVE, LifecycleState.SUSPENDED}),
        LifecycleState.QUARANTINED,
    ),
    Transition.RELEASE: (frozenset({LifecycleState.QUARANTINED}), LifecycleState.ACTIVE),
    Transition.DECOMMISSION: (
        frozenset({LifecycleState.ACTIVE, LifecycleState.SUSPENDED, LifecycleState.QUARANTINED}),
        LifecycleState.DECOMMISSIONED,
    ),
}

#: Transitions after which the agent's live tokens must stop working at once.
REVOKING_TRANSITIONS = frozenset({Transition.SUSPEND, Transition.QUARANTINE, Transition.DECOMMISSION})


def next_state(current: LifecycleState, transition: Transition, agent_id: str) -> LifecycleState:
    sources, target = _ALLOWED[transition]
    if current not in sources:
        hint = " (use release)" if current is LifecycleState.QUARANTINED else ""
        raise Conflict(f"cannot {transition.value} agent '{agent_id}': it is {current.value}{hint}")
    return target


@dataclass(frozen=True, slots=True)
class AgentKey:
    """One registered public key. ``jwk`` never holds private members."""

    kid: str
    alg: str
    jwk: dict[str, str]
    created_at: float
    expires_at: float | None = None
    removed_at: float | None = None

    def usable_at(self, now: float) -> bool:
        return self.removed_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    owner: str
    description: str
    attributes: dict[str, str]
    segment: str | None
    labels: tuple[str, ...]
    scopes: tuple[str, ...]
    resource_uris: tuple[str, ...]
    max_ttl: int
    require_dpop: bool
    state: LifecycleState
    created_at: float
    updated_at: float
    expires_at: float | None = None
    state_reason: str | None = None
    secret_hash: str | None = field(default=None, repr=False)
    keys: tuple[AgentKey, ...] = ()

    def is_usable_at(self, now: float) -> bool:
        """Active and not past its expiry: the only agents that get tokens."""
        return self.state is LifecycleState.ACTIVE and (self.expires_at is None or now < self.expires_at)

    def key(self, kid: str, now: float) -> AgentKey | None:
        for key in self.keys:
            if key.kid == kid and key.usable_at(now):
                return key
        return None

    def usable_keys(self, now: float) -> list[AgentKey]:
        return [key for key in self.keys if key.usable_at(now)]


def validate_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200 or any(ord(c) < 32 for c in name):
        raise ValidationFailed(f"invalid agent name '{name[:60]}': 1-200 printable characters")
    return name


def validate_owner(owner: str) -> str:
    if not EMAIL.fullmatch(owner):
        raise ValidationFailed(f"invalid owner '{owner[:80]}': expected an email address")
    return owner.lower()


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    for scope in scopes:
        if not SCOPE_TOKEN.fullmatch(scope):
            raise ValidationFailed(f"invalid scope '{scope[:60]}'")
    return tuple(dict.fromkeys(scopes))


def validate_segment(segment: str | None) -> str | None:
    if segment is not None and not SEGMENT.fullmatch(segment):
        raise ValidationFailed(f"invalid segment '{segment[:60]}'")
    return segment


def validate_attributes(attributes: dict[str, str]) -> dict[str, str]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValidationFailed(f"too many attributes: {len(attributes)} (max {MAX_ATTRIBUTES})")
    for key, value in attributes.items():
        if not ATTRIBUTE_KEY.fullmatch(key):
            raise ValidationFailed(f"invalid attribute name '{key[:60]}'")
        if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_VALUE:
            raise ValidationFailed(
                f"attribute '{key}' must be a string of at most {MAX_ATTRIBUTE_VALUE} chars"
            )
    return dict(attributes)


def validate_labels(labels: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    for label in labels:
        if not SEGMENT.fullmatch(label):
            raise ValidationFailed(f"invalid label '{label[:60]}'")
    return tuple(dict.fromkeys(labels))


def validate_resource_uri(uri: str) -> str:
    """RFC 8707 §2: an absolute URI without a fragment."""
    if len(uri) > 512 or not RESOURCE_URI.fullmatch(uri):
        raise ValidationFailed(f"invalid resource uri '{uri[:80]}': absolute uri without fragment")
    return uri
