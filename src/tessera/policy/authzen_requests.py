"""AuthZEN Authorization API 1.0 requests: the JSON body and the information model (§5-§8).

Every check the spec asks for is here: the top level is a JSON object (§10.1.1), a
required member missing or of the wrong type is a ``400 invalid_request`` naming it,
unknown members are ignored, and a JSON ``null`` counts as absent (§11.4). Duplicate
member names, ``NaN`` and over-deep nesting are refused too (I-JSON, §11.4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tessera.errors import InvalidRequest

EXECUTE_ALL = "execute_all"
DENY_ON_FIRST_DENY = "deny_on_first_deny"
PERMIT_ON_FIRST_PERMIT = "permit_on_first_permit"
SEMANTICS = (EXECUTE_ALL, DENY_ON_FIRST_DENY, PERMIT_ON_FIRST_PERMIT)
MAX_EVALUATIONS = 1000


# --- JSON bodies ---------------------------------------------------------------------------


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member '{key[:40]}'")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not a json number")


def load_request(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (§10.1.1: the top level MUST be an object)."""
    if not body.strip():
        raise InvalidRequest("request body is empty")
    try:
        value = json.loads(
            body.decode("utf-8"), object_pairs_hook=_unique_members, parse_constant=_no_constant
        )
    except UnicodeDecodeError as exc:
        raise InvalidRequest("request body is not utf-8") from exc
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply") from exc
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid json ({str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a json object")
    return value


# --- The information model (§5) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A Subject (§5.1) or Resource (§5.2); ``id`` is ``None`` only for a search target."""

    type: str
    id: str | None
    properties: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "properties": self.properties}


@dataclass(frozen=True, slots=True)
class ActionRef:
    """An Action (§5.3)."""

    name: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One Access Evaluation request (§6.1)."""

    subject: EntityRef
    action: ActionRef
    resource: EntityRef
    context: dict[str, Any] = field(default_factory=dict)


def _present(body: dict[str, Any], key: str) -> Any:
    return body.get(key)  # absent and null are the same (§11.4)


def _required(body: dict[str, Any], key: str, where: str = "") -> Any:
    value = body.get(key)
    if value is None:
        raise InvalidRequest(f"{where + ': ' if where else ''}missing required field '{key}'")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a string")
    return value


def parse_entity(value: Any, where: str, *, need_id: bool = True) -> EntityRef:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object")
    type_ = _string(_required(value, "type", where), f"{where}.type")
    raw_id = _required(value, "id", where) if need_id else _present(value, "id")
    id_ = _string(raw_id, f"{where}.id") if raw_id is not None else None
    return EntityRef(type_, id_, _object(_present(value, "properties"), f"{where}.properties"))


def parse_action(value: Any, where: str = "action") -> ActionRef:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object")
    name = _string(_required(value, "name", where), f"{where}.name")
    return ActionRef(name, _object(_present(value, "properties"), f"{where}.properties"))


def parse_evaluation(body: dict[str, Any]) -> Evaluation:
    """§6.1: ``subject``, ``action`` and ``resource`` are required, ``context`` optional."""
    return Evaluation(
        subject=parse_entity(_required(body, "subject"), "subject"),
        action=parse_action(_required(body, "action")),
        resource=parse_entity(_required(body, "resource"), "resource"),
        context=_object(_present(body, "context"), "context"),
    )


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """An Access Evaluations request (§7.1); ``single`` when ``evaluations`` is absent or empty."""

    items: tuple[Evaluation | InvalidRequest, ...] = ()
    semantic: str = EXECUTE_ALL
    single: Evaluation | None = None


_Defaults = tuple[EntityRef | None, ActionRef | None, EntityRef | None, dict[str, Any]]


def parse_batch(body: dict[str, Any]) -> BatchRequest:
    """§7.1: top-level ``subject``/``action``/``resource``/``context`` are defaults, replaced whole.

    A problem with one item (a member missing after defaults, a wrong type) fails that
    item only; problems with the payload itself are a 400.
    """
    evaluations = _present(body, "evaluations")
    if evaluations is None or evaluations == []:
        return BatchRequest(single=parse_evaluation(body))
    if not isinstance(evaluations, list):
        raise InvalidRequest("evaluations must be an array")
    if len(evaluations) > MAX_EVALUATIONS:
        raise InvalidRequest(f"evaluations holds more than {MAX_EVALUATIONS} items")
    options = _object(_present(body, "options"), "options")
    semantic = _present(options, "evaluations_semantic") or EXECUTE_ALL
    if semantic not in SEMANTICS:
        raise InvalidRequest(f"options.evaluations_semantic must be one of {', '.join(SEMANTICS)}")
    subject = _present(body, "subject")
    action = _present(body, "action")
    resource = _present(body, "resource")
    defaults: _Defaults = (
        parse_entity(subject, "subject") if subject is not None else None,
        parse_action(action) if action is not None else None,
        parse_entity(resource, "resource") if resource is not None else None,
        _object(_present(body, "context"), "context"),
    )
    items: list[Evaluation | InvalidRequest] = []
    for index, item in enumerate(evaluations):
        if not isinstance(item, dict):
            raise InvalidRequest(f"evaluations[{index}] must be an object")
        try:
            items.append(_batch_item(item, f"evaluations[{index}]", defaults))
        except InvalidRequest as exc:
            items.append(exc)
    return BatchRequest(tuple(items), str(semantic))


def _batch_item(item: dict[str, Any], where: str, defaults: _Defaults) -> Evaluation:
    subject, action, resource, context = defaults

    def missing(key: str) -> InvalidRequest:
        return InvalidRequest(f"{where}: missing required field '{key}' and no top-level default")

    own_subject = _present(item, "subject")
    own_action = _present(item, "action")
    own_resource = _present(item, "resource")
    own_context = _present(item, "context")
    subject = parse_entity(own_subject, f"{where}.subject") if own_subject is not None else subject
    action = parse_action(own_action, f"{where}.action") if own_action is not None else action
    resource = parse_entity(own_resource, f"{where}.resource") if own_resource is not None else resource
    if subject is None:
        raise missing("subject")
    if action is None:
        raise missing("action")
    if resource is None:
        raise missing("resource")
    if own_context is not None:
        context = _object(own_context, f"{where}.context")
    return Evaluation(subject, action, resource, context)


# --- Search requests (§8) -------------------------------------------------------------------

SUBJECT, RESOURCE, ACTION = "subject", "resource", "action"
TARGETS = (SUBJECT, RESOURCE, ACTION)


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A Subject (§8.4), Resource (§8.5) or Action (§8.6) Search request, with its page (§8.2.1)."""

    target: str
    subject: EntityRef
    action: ActionRef | None
    resource: EntityRef
    context: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    token: str | None = None


def parse_search(body: dict[str, Any], target: str) -> SearchRequest:
    """The searched-for entity needs only its ``type`` (an ``id`` is ignored); inputs need both.

    Action Search has no ``action`` (§8.6.1): one sent anyway is ignored.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown search target {target!r}")
    subject = parse_entity(_required(body, SUBJECT), SUBJECT, need_id=target != SUBJECT)
    action = parse_action(_required(body, ACTION)) if target != ACTION else None
    resource = parse_entity(_required(body, RESOURCE), RESOURCE, need_id=target != RESOURCE)
    if target == SUBJECT:
        subject = EntityRef(subject.type, None, subject.properties)
    if target == RESOURCE:
        resource = EntityRef(resource.type, None, resource.properties)
    page = _object(_present(body, "page"), "page")
    limit = _present(page, "limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InvalidRequest("page.limit must be a non-negative integer")
    token = _present(page, "token")
    if token is not None:
        token = _string(token, "page.token")
    return SearchRequest(
        target, subject, action, resource, _object(_present(body, "context"), "context"), limit, token or None
    )
