"""Response playbooks: YAML that says when to act on an agent's risk, and how.

    playbooks:
      - name: contain-high-risk          # [a-z0-9-], unique
        description: quarantine at 80    # optional
        when:                            # every condition given must hold
          risk_at_least: 80              # the agent's score after this event
          detectors: [new_zone]          # one of these fired on this event
          count: {detector: denial_burst, at_least: 2, within: 600}   # findings in a window (s)
        actions:                         # in order
          - alert                        # webhook + CAEP SET to registered receivers
          - require_approval: 5          # the next N decisions deny with approval_required
          - cap_token_lifetime: 60       # seconds, for tokens issued from now on
          - revoke_tokens                # every live token of the agent
          - quarantine                   # lifecycle; only a person releases it
          - notify_owner                 # webhook naming the agent's owner
        cooldown: 3600                   # seconds before it fires again for the same agent

See docs/continuous-verification.md for the default set and how to tune it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tessera.detect.detectors import DETECTORS
from tessera.errors import ValidationFailed

MAX_YAML_BYTES = 48 * 1024  # inside a JSON body under the 64 KiB request limit
MAX_PLAYBOOKS = 50
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
#: action → the kind of value it takes (None: no value)
ACTIONS: dict[str, tuple[int, int] | None] = {
    "alert": None,
    "require_approval": (1, 1000),
    "cap_token_lifetime": (10, 86400),
    "revoke_tokens": None,
    "quarantine": None,
    "notify_owner": None,
}


class PlaybookInvalid(ValidationFailed):
    """A playbook document that cannot be applied: the message names the playbook and the field."""


@dataclass(frozen=True, slots=True)
class CountTrigger:
    detector: str
    at_least: int
    within: float


@dataclass(frozen=True, slots=True)
class Trigger:
    risk_at_least: int | None = None
    detectors: tuple[str, ...] = ()
    count: CountTrigger | None = None


@dataclass(frozen=True, slots=True)
class Action:
    kind: str
    value: int | None = None

    def to_json(self) -> Any:
        return self.kind if self.value is None else {self.kind: self.value}


@dataclass(frozen=True, slots=True)
class Playbook:
    name: str
    trigger: Trigger
    actions: tuple[Action, ...]
    cooldown: float = 3600.0
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        when: dict[str, Any] = {}
        if self.trigger.risk_at_least is not None:
            when["risk_at_least"] = self.trigger.risk_at_least
        if self.trigger.detectors:
            when["detectors"] = list(self.trigger.detectors)
        if self.trigger.count is not None:
            count = self.trigger.count
            within = int(count.within)
            when["count"] = {"detector": count.detector, "at_least": count.at_least, "within": within}
        return {
            "name": self.name,
            "description": self.description,
            "when": when,
            "actions": [a.to_json() for a in self.actions],
            "cooldown": int(self.cooldown),
        }


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PlaybookInvalid(f"{where} must be an integer from {low} to {high}, got '{str(value)[:40]}'")
    return value


def _detector(value: Any, where: str) -> str:
    if value not in DETECTORS:
        raise PlaybookInvalid(f"{where}: unknown detector '{str(value)[:60]}'; known: {', '.join(DETECTORS)}")
    return str(value)


def _trigger(value: Any, where: str) -> Trigger:
    if not isinstance(value, dict) or not value:
        raise PlaybookInvalid(f"{where}.when must be a mapping with at least one condition")
    unknown = set(value) - {"risk_at_least", "detectors", "count"}
    if unknown:
        raise PlaybookInvalid(f"{where}.when: unknown condition '{sorted(unknown)[0]}'")
    risk = (
        _int(value["risk_at_least"], f"{where}.when.risk_at_least", 1, 100)
        if "risk_at_least" in value
        else None
    )
    detectors: tuple[str, ...] = ()
    if "detectors" in value:
        names = value["detectors"]
        if not isinstance(names, list) or not names:
            raise PlaybookInvalid(f"{where}.when.detectors must be a non-empty list")
        detectors = tuple(_detector(n, f"{where}.when.detectors") for n in names)
    count = None
    if "count" in value:
        spec = value["count"]
        if not isinstance(spec, dict) or set(spec) != {"detector", "at_least", "within"}:
            raise PlaybookInvalid(f"{where}.when.count needs exactly detector, at_least and within")
        count = CountTrigger(
            _detector(spec["detector"], f"{where}.when.count.detector"),
            _int(spec["at_least"], f"{where}.when.count.at_least", 1, 10_000),
            float(_int(spec["within"], f"{where}.when.count.within", 1, 7 * 86400)),
        )
    return Trigger(risk, detectors, count)


def _action(value: Any, where: str) -> Action:
    if isinstance(value, str):
        kind, argument = value, None
    elif isinstance(value, dict) and len(value) == 1:
        kind, argument = next(iter(value.items()))
    else:
        raise PlaybookInvalid(f"{where} must be an action name or a one-entry mapping")
    if kind not in ACTIONS:
        raise PlaybookInvalid(f"{where}: unknown action '{str(kind)[:60]}'; known: {', '.join(ACTIONS)}")
    bounds = ACTIONS[kind]
    if bounds is None:
        if argument is not None:
            raise PlaybookInvalid(f"{where}: action '{kind}' takes no value")
        return Action(kind)
    if argument is None:
        raise PlaybookInvalid(f"{where}: action '{kind}' needs a value")
    return Action(kind, _int(argument, f"{where}.{kind}", *bounds))


def _playbook(value: Any, index: int) -> Playbook:
    where = f"playbooks[{index}]"
    if not isinstance(value, dict):
        raise PlaybookInvalid(f"{where} must be a mapping")
    unknown = set(value) - {"name", "description", "when", "actions", "cooldown"}
    if unknown:
        raise PlaybookInvalid(f"{where}: unknown field '{sorted(unknown)[0]}'")
    name = value.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise PlaybookInvalid(f"{where}.name must match [a-z0-9][a-z0-9-]{{0,99}}, got '{str(name)[:60]}'")
    where = f"playbook '{name}'"
    description = value.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        raise PlaybookInvalid(f"{where}.description must be text of at most 500 characters")
    actions = value.get("actions")
    if not isinstance(actions, list) or not actions or len(actions) > 10:
        raise PlaybookInvalid(f"{where}.actions must be a list of 1-10 actions")
    cooldown = _int(value.get("cooldown", 3600), f"{where}.cooldown", 0, 30 * 86400)
    return Playbook(
        name=name,
        trigger=_trigger(value.get("when"), where),
        actions=tuple(_action(a, f"{where}.actions[{i}]") for i, a in enumerate(actions)),
        cooldown=float(cooldown),
        description=description,
    )


def parse_document(document: Any) -> list[Playbook]:
    """Validate a parsed document (``{"playbooks": [...]}``); raise :class:`PlaybookInvalid`."""
    if not isinstance(document, dict) or set(document) != {"playbooks"}:
        raise PlaybookInvalid("a playbook file holds one key, 'playbooks', with a list")
    items = document["playbooks"]
    if not isinstance(items, list) or len(items) > MAX_PLAYBOOKS:
        raise PlaybookInvalid(f"'playbooks' must be a list of at most {MAX_PLAYBOOKS}")
    playbooks = [_playbook(item, i) for i, item in enumerate(items)]
    names = [p.name for p in playbooks]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise PlaybookInvalid(f"playbook name '{duplicate}' is used twice")
    return playbooks


def parse_yaml(text: str) -> list[Playbook]:
    if len(text.encode("utf-8")) > MAX_YAML_BYTES:
        raise PlaybookInvalid(f"a playbook file is at most {MAX_YAML_BYTES} bytes")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookInvalid(f"playbook yaml does not parse: {str(exc).splitlines()[0]}") from exc
    return parse_document(document)


DEFAULT_YAML = """\
playbooks:
  - name: step-up-elevated-risk
    description: risk is elevated; a person approves the next requests and tokens are short
    when: {risk_at_least: 50}
    actions: [alert, {require_approval: 3}, {cap_token_lifetime: 60}]
    cooldown: 900
  - name: contain-high-risk
    description: risk is high; stop the agent until a person releases it
    when: {risk_at_least: 80}
    actions: [revoke_tokens, quarantine, notify_owner, alert]
    cooldown: 3600
  - name: repeated-probing
    description: two bursts of denials within ten minutes
    when: {count: {detector: denial_burst, at_least: 2, within: 600}}
    actions: [revoke_tokens, {require_approval: 10}, alert]
    cooldown: 900
"""


def default_playbooks() -> list[Playbook]:
    return parse_yaml(DEFAULT_YAML)
