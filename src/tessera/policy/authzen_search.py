"""AuthZEN Search APIs (§8): which subjects, resources or actions would be permitted.

Candidates are what the PDP knows: for Subject and Resource Search every entity of
the searched type (bundle ``entities.json``, registered resources, registry agents;
:meth:`EntityIndex.of_type`), for Action Search every action the active bundle names
— in its schema, in its permit policies' scopes and as ``Action`` entities. Each
candidate is decided exactly like an evaluation (and recorded); the permitted ones
are the results, in candidate order (sorted by id or name). An unknown type or an
unknown input entity simply finds nothing (§8.1: an empty ``results``).

Pagination (§8.2): ``page.limit`` bounds a page (default 100, at most 1000; 0 means
the default). ``page.next_token`` is an opaque cursor (the last id returned, bound to
the request's entities and context, which must not change between pages, §8.2.1);
it is ``""`` on the last page. Every response carries ``page`` with ``next_token``
and ``count``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from typing import Any

import cedarpy

from tessera.audit.service import RequestContext
from tessera.errors import InvalidRequest
from tessera.policy.authzen import ACCESS_TOKEN_KEY, MAX_NAME, AuthZenService, TokenRejected, entity_uid
from tessera.policy.authzen_requests import (
    ACTION,
    RESOURCE,
    SUBJECT,
    ActionRef,
    EntityRef,
    Evaluation,
    SearchRequest,
)
from tessera.policy.compiled import CompiledBundle
from tessera.policy.decisions import Question
from tessera.policy.pdp import ACTION_TYPE, NoPolicyLoaded

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CHUNK = 64
_COMMENT = re.compile(r"//[^\n]*")
_NAME = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)'
_SCHEMA_ACTIONS = re.compile(rf"(?<![\w\"])action\s+({_NAME}(?:\s*,\s*{_NAME})*)")


# --- Action candidates ---------------------------------------------------------------------


def _schema_actions(name: str, text: str) -> set[str]:
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError:
            return set()
        body = data.get("", {}) if isinstance(data, dict) else {}
        actions = body.get("actions", {}) if isinstance(body, dict) else {}
        return {str(a) for a in actions} if isinstance(actions, dict) else set()
    names: set[str] = set()
    for match in _SCHEMA_ACTIONS.finditer(_COMMENT.sub("", text)):
        for part in re.findall(_NAME, match.group(1)):
            names.add(json.loads(part) if part.startswith('"') else part)
    return names


def _policy_actions(text: str) -> set[str]:
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError:
        return set()
    names: set[str] = set()
    for policy in est.get("staticPolicies", {}).values():
        if policy.get("effect") != "permit":
            continue
        scope = policy.get("action", {})
        for uid in [scope.get("entity"), *scope.get("entities", [])]:
            if isinstance(uid, dict) and uid.get("type") == ACTION_TYPE and isinstance(uid.get("id"), str):
                names.add(uid["id"])
    return names


def bundle_actions(compiled: CompiledBundle) -> tuple[str, ...]:
    """Every action name a bundle declares in its schema or grants in a permit's scope."""
    bundle = compiled.bundle
    names: set[str] = set()
    if bundle.schema_file and bundle.schema_text:
        names |= _schema_actions(bundle.schema_file, bundle.schema_text)
    for file in bundle.policy_files:
        names |= _policy_actions(bundle.files[file])
    return tuple(sorted(n for n in names if 0 < len(n) <= MAX_NAME))


# --- Page tokens -------------------------------------------------------------------------------


def _fingerprint(request: SearchRequest) -> str:
    """What must stay the same between pages: the target, the entities and the context."""

    def entity(ref: EntityRef) -> list[Any]:
        return [ref.type, ref.id, ref.properties]

    action = [request.action.name, request.action.properties] if request.action else None
    canonical = json.dumps(
        [request.target, entity(request.subject), action, entity(request.resource), request.context],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _encode_token(after: str, limit: int, fingerprint: str) -> str:
    raw = json.dumps({"a": after, "l": limit, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_token(token: str, fingerprint: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after, limit, bound = data["a"], data["l"], data["f"]
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest("page.token is not a token this server issued") from exc
    if not isinstance(after, str) or not isinstance(limit, int) or not isinstance(bound, str):
        raise InvalidRequest("page.token is not a token this server issued")
    if bound != fingerprint:
        raise InvalidRequest("page.token belongs to a search with other entities or context")
    return after, limit


# --- The search ------------------------------------------------------------------------------


class AuthZenSearch:
    def __init__(self, service: AuthZenService) -> None:
        self._service = service
        self._actions: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def actions(self) -> tuple[str, ...]:
        """The action candidates of the active bundle (computed once per version)."""
        try:
            compiled = self._service.decisions.pdp.compiled
        except NoPolicyLoaded:
            return ()
        with self._lock:
            cached = self._actions.get(compiled.version)
        if cached is None:
            cached = bundle_actions(compiled)
            with self._lock:
                self._actions = {compiled.version: cached}
        entities = {uid.id for uid in self._service.entities.of_type(ACTION_TYPE)}
        return tuple(sorted(set(cached) | entities)) if entities else cached

    def _candidates(self, request: SearchRequest) -> list[str]:
        if request.target == ACTION:
            return list(self.actions())
        searched = request.subject if request.target == SUBJECT else request.resource
        return [uid.id for uid in self._service.entities.of_type(searched.type)]

    def _evaluation(self, request: SearchRequest, candidate: str) -> Evaluation:
        subject, resource = request.subject, request.resource
        action = request.action or ActionRef(candidate)
        if request.target == SUBJECT:
            subject = EntityRef(subject.type, candidate)
        elif request.target == RESOURCE:
            resource = EntityRef(resource.type, candidate)
        return Evaluation(subject, action, resource, request.context)

    def _check_inputs(self, request: SearchRequest) -> None:
        """Input entities must map to Cedar uids even when there is nothing to search."""
        if request.target != SUBJECT:
            entity_uid(request.subject, SUBJECT)
        elif request.context.get(ACCESS_TOKEN_KEY) is not None:
            raise InvalidRequest(
                "context.access_token names one subject; it has no place in a subject search"
            )
        token = request.context.get(ACCESS_TOKEN_KEY)
        if token is not None and not isinstance(token, str):
            raise InvalidRequest("context.access_token must be a string")
        if request.target != RESOURCE:
            entity_uid(request.resource, RESOURCE)
        if request.action is not None and not 0 < len(request.action.name) <= MAX_NAME:
            raise InvalidRequest(f"action.name must be 1-{MAX_NAME} characters")

    def search(self, request: SearchRequest, caller: RequestContext) -> dict[str, Any]:
        self._check_inputs(request)
        fingerprint = _fingerprint(request)
        after, limit = None, request.limit
        if request.token is not None:
            after, token_limit = _decode_token(request.token, fingerprint)
            limit = limit if limit is not None else token_limit
        limit = min(limit or DEFAULT_PAGE, MAX_PAGE)
        candidates = [c for c in self._candidates(request) if after is None or c > after]
        try:
            found = self._permitted(request, candidates, limit + 1, caller)
        except TokenRejected as exc:
            self._service.refuse(self._evaluation(request, ""), str(exc), caller)
            return {
                "page": {"next_token": "", "count": 0},
                "context": {"error": {"status": 401, "message": str(exc)}},
                "results": [],
            }
        page = found[:limit]
        next_token = _encode_token(page[-1], limit, fingerprint) if len(found) > limit else ""
        if request.target == ACTION:
            results: list[dict[str, str]] = [{"name": name} for name in page]
        else:
            searched = request.subject if request.target == SUBJECT else request.resource
            results = [{"type": searched.type, "id": id_} for id_ in page]
        return {"page": {"next_token": next_token, "count": len(results)}, "results": results}

    def _permitted(
        self, request: SearchRequest, candidates: list[str], wanted: int, caller: RequestContext
    ) -> list[str]:
        """Decide candidates in order, in chunks, until ``wanted`` are permitted or none are left."""
        found: list[str] = []
        position = 0
        while position < len(candidates) and len(found) < wanted:
            size = min(max(wanted - len(found), 8), MAX_CHUNK)
            chunk = candidates[position : position + size]
            position += len(chunk)
            asked: list[str] = []
            questions: list[Question] = []
            for candidate in chunk:
                try:
                    questions.append(self._service.question(self._evaluation(request, candidate)))
                except InvalidRequest:
                    continue  # an indexed id Cedar cannot name (bundle entities are not checked)
                asked.append(candidate)
            decisions = self._service.decisions.decide(questions, caller) if questions else []
            found.extend(c for c, d in zip(asked, decisions, strict=True) if d.allowed)
        return found[:wanted]
