"""OpenID AuthZEN Authorization API 1.0 mapped onto Tessera's PDP (no web framework here).

Requests are parsed by :mod:`tessera.policy.authzen_requests`; this module maps them
to Cedar questions and answers them through :class:`DecisionService`, which enriches
the context, decides and records every decision (see docs/authzen.md):

- ``subject``/``resource`` ``{type, id, properties}`` → the entity ``type::"id"``; the
  type must be a Cedar type name. ``properties`` become that entity's attributes for
  this request, merged over the indexed entity's — except for Tessera agents (type
  ``Agent``), whose registry attributes win and which a caller cannot invent (an
  unregistered agent gets no attributes);
- ``action`` ``{name, properties}`` → ``Action::"name"``, with ``properties`` as
  ``context.action`` (always a record, empty without properties);
- ``context`` → the Cedar context, where Tessera's values win (time, agent state,
  risk, task, network zone). ``context.access_token``, the agent's access token, is
  verified, turned into the task facts and removed; its subject must be the request's.
  ``task_resources`` comes from that token only, and ``network_zone`` from
  ``context.client_ip`` only (never the PEP's own address);
- JSON values become Cedar values: ``null`` is dropped, numbers that fit neither
  ``Long`` nor ``decimal`` become strings, ``{"__entity": …}`` and ``{"__extn": …}``
  keep Cedar's meaning, other ``__`` keys are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tessera.audit.service import Auditor, RequestContext, event
from tessera.errors import InvalidRequest, ValidationFailed
from tessera.ids import IdGenerator
from tessera.policy.authzen_requests import (
    EXECUTE_ALL,
    PERMIT_ON_FIRST_PERMIT,
    BatchRequest,
    EntityRef,
    Evaluation,
)
from tessera.policy.context import TokenFacts, delegation_from_claims
from tessera.policy.decisions import DecisionService, Question
from tessera.policy.entities import AGENT_TYPE, EntityIndex, Uid
from tessera.policy.pdp import Decision
from tessera.policy.service import validate_uid
from tessera.tokens.access_tokens import AccessToken
from tessera.tokens.authorization_details import AGENT_TASK
from tessera.tokens.jose import JwsError

ACCESS_TOKEN_KEY = "access_token"
APPROVAL_DETAIL = "tessera_approval"  # tessera.access.requests.APPROVAL_DETAIL
MAX_DEPTH = 32
MAX_NAME = 256
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_DECIMAL_LIMIT = 922_337_203_685_477
_ESCAPES = frozenset({"__entity", "__extn"})

TokenCheck = Callable[[str], AccessToken]


# --- JSON values as Cedar values --------------------------------------------------------


class _Drop:
    pass


_DROP = _Drop()


def _number(value: int | float) -> Any:
    if isinstance(value, int) or value.is_integer():
        number = int(value)
        return number if _LONG_MIN <= number <= _LONG_MAX else str(value)
    text = f"{value:.4f}"
    if abs(value) < _DECIMAL_LIMIT and float(text) == value:
        return {"__extn": {"fn": "decimal", "arg": text}}
    return repr(value)


def cedar_value(value: Any, where: str, depth: int = 0) -> Any:
    """A JSON value as Cedar JSON (see the module docstring); ``null`` yields a drop marker."""
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"{where} is nested more than {MAX_DEPTH} levels")
    if value is None:
        return _DROP
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list):
        converted = (cedar_value(v, where, depth + 1) for v in value)
        return [v for v in converted if v is not _DROP]
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _ESCAPES:
            return value
        return cedar_record(value, where, depth + 1)
    raise InvalidRequest(f"{where} holds a value that is not json")


def cedar_record(value: dict[str, Any], where: str, depth: int = 0) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, item in value.items():
        if key.startswith("__"):
            continue
        converted = cedar_value(item, where, depth)
        if converted is not _DROP:
            record[key] = converted
    return record


# --- From an evaluation to a Question ----------------------------------------------------


class TokenRejected(Exception):
    """``context.access_token`` does not verify or names another subject: the answer is deny."""


def entity_uid(entity: EntityRef, where: str) -> Uid:
    """The Cedar uid of an AuthZEN entity; its type must be a Cedar type name."""
    if entity.id is None:
        raise InvalidRequest(f"{where}: missing required field 'id'")
    try:
        return validate_uid(entity.type, entity.id)
    except ValidationFailed as exc:
        raise InvalidRequest(f"{where}: {exc.description}") from exc


def request_entity(
    index: EntityIndex, uid: Uid, properties: dict[str, Any], where: str
) -> dict[str, Any] | None:
    """The entity as this request describes it, or ``None`` to use the indexed one as it is."""
    if not properties:
        return None
    attrs = cedar_record(properties, f"{where}.properties")
    indexed = index.get(uid)
    if uid.type == AGENT_TYPE:
        if indexed is None:
            return None  # a caller cannot invent a Tessera agent
        return {**indexed, "attrs": {**attrs, **indexed.get("attrs", {})}}
    if indexed is None:
        return {"uid": uid.as_json(), "attrs": attrs, "parents": []}
    return {**indexed, "attrs": {**indexed.get("attrs", {}), **attrs}}


def delegation_depth(claims: dict[str, Any]) -> int:
    """How many actors the token's ``act`` chain (RFC 8693 §4.1) nests."""
    depth = 0
    act = claims.get("act")
    while isinstance(act, dict) and depth < MAX_DEPTH:
        depth += 1
        act = act.get("act")
    return depth


def token_facts(token: AccessToken) -> tuple[TokenFacts, list[str]]:
    task = next((d for d in token.authorization_details if d.get("type") == AGENT_TASK), {})
    resources = [r for r in task.get("resources", []) if isinstance(r, str)]
    chain = delegation_from_claims(token.claims, MAX_DEPTH)
    facts = TokenFacts(
        task_id=str(task.get("task_id", "")),
        purpose=str(task.get("purpose", "")),
        delegation_depth=chain.depth,
        delegation=chain,
        approval=next((d for d in token.authorization_details if d.get("type") == APPROVAL_DETAIL), None),
    )
    return facts, resources


@dataclass(frozen=True, slots=True)
class Outcome:
    """One answer: a PDP decision, or a refusal made before asking it."""

    allowed: bool
    context: dict[str, Any]

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        return cls(decision.allowed, decision.explanation())

    @classmethod
    def failed(cls, status: int, message: str) -> Outcome:
        return cls(False, {"error": {"status": status, "message": message}})

    def as_json(self) -> dict[str, Any]:
        return {"decision": self.allowed, "context": self.context}


class AuthZenService:
    """Answers AuthZEN evaluations through :class:`DecisionService` (which audits each one)."""

    def __init__(
        self,
        decisions: DecisionService,
        entities: EntityIndex,
        *,
        check_token: TokenCheck | None = None,
        auditor: Auditor | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        self.decisions = decisions
        self.entities = entities
        self._check_token = check_token
        self._auditor = auditor
        self._ids = ids

    def question(self, evaluation: Evaluation) -> Question:
        """The Cedar question for ``evaluation``; raises ``InvalidRequest`` or ``TokenRejected``."""
        principal = entity_uid(evaluation.subject, "subject")
        resource = entity_uid(evaluation.resource, "resource")
        overrides: dict[str, dict[str, Any]] = {}
        for uid, ref, where in (
            (principal, evaluation.subject, "subject"),
            (resource, evaluation.resource, "resource"),
        ):
            entity = request_entity(self.entities, uid, ref.properties, where)
            if entity is not None:
                overrides[uid.key] = entity
        supplied = dict(evaluation.context)
        raw_token = supplied.pop(ACCESS_TOKEN_KEY, None)
        context = cedar_record(supplied, "context")
        name = evaluation.action.name
        if not name or len(name) > MAX_NAME:
            raise InvalidRequest(f"action.name must be 1-{MAX_NAME} characters")
        facts, task_resources = self._token(raw_token, principal) if raw_token is not None else (None, [])
        context["action"] = cedar_record(evaluation.action.properties, "action.properties")
        # Derived from the token only, like task_id: a PEP cannot claim a task's resources.
        context["task_resources"] = task_resources
        if not isinstance(context.get("client_ip"), str):
            context["client_ip"] = ""  # the agent's address is the PEP's to pass, never the PEP's own
        return Question(principal, name, resource, context, overrides, facts)

    def _token(self, raw: Any, principal: Uid) -> tuple[TokenFacts, list[str]]:
        if not isinstance(raw, str):
            raise InvalidRequest("context.access_token must be a string")
        if self._check_token is None:
            raise TokenRejected("access tokens cannot be verified here")
        try:
            token = self._check_token(raw)
        except JwsError as exc:
            raise TokenRejected(f"access token rejected: {exc}") from exc
        # The principal is the agent presenting the token: its client_id, which is also its
        # sub unless the token was exchanged for someone else (RFC 8693: sub is the subject).
        if principal.type != AGENT_TYPE or principal.id != token.client_id:
            raise TokenRejected("access token subject does not match the request's subject")
        return token_facts(token)

    def refuse(self, evaluation: Evaluation, reason: str, caller: RequestContext) -> Outcome:
        """A deny decided before the PDP (the agent's token failed): recorded like any decision."""
        decision_id = self._ids.new("dec") if self._ids else ""
        if self._auditor is not None:
            subject = evaluation.subject
            self._auditor.record_async(
                event(
                    "decision",
                    caller,
                    subject=subject.id if subject.type == AGENT_TYPE else f"{subject.type}::{subject.id}",
                    outcome="deny",
                    decision_id=decision_id or None,
                    policy_version=self.decisions.pdp.version,
                    data={"action": evaluation.action.name[:128], "errors": [reason[:200]]},
                )
            )
        return Outcome(
            False,
            {
                "decision_id": decision_id,
                "policy_version": self.decisions.pdp.version or "",
                "determining_policies": [],
                "errors": [reason],
                "obligations": {},
                "error": {"status": 401, "message": reason},
            },
        )

    def evaluate(self, evaluation: Evaluation, caller: RequestContext) -> dict[str, Any]:
        """§6: one decision; a request that cannot be mapped raises ``InvalidRequest`` (400)."""
        try:
            question = self.question(evaluation)
        except TokenRejected as exc:
            return self.refuse(evaluation, str(exc), caller).as_json()
        return Outcome.of(self.decisions.decide([question], caller)[0]).as_json()

    def evaluate_batch(self, batch: BatchRequest, caller: RequestContext) -> dict[str, Any]:
        """§7: every ``evaluations_semantic``; per-item failures are ``decision: false``."""
        if batch.single is not None:
            return self.evaluate(batch.single, caller)
        if batch.semantic == EXECUTE_ALL:
            outcomes = self._execute_all(batch.items, caller)
        else:
            outcomes = self._short_circuit(batch, caller)
        return {"evaluations": [o.as_json() for o in outcomes]}

    def _prepare(self, item: Evaluation | InvalidRequest, caller: RequestContext) -> Question | Outcome:
        if isinstance(item, InvalidRequest):
            return Outcome.failed(400, item.description)
        try:
            return self.question(item)
        except InvalidRequest as exc:
            return Outcome.failed(400, exc.description)
        except TokenRejected as exc:
            return self.refuse(item, str(exc), caller)

    def _execute_all(
        self, items: tuple[Evaluation | InvalidRequest, ...], caller: RequestContext
    ) -> list[Outcome]:
        prepared = [self._prepare(item, caller) for item in items]
        questions = [p for p in prepared if isinstance(p, Question)]
        decided = iter(self.decisions.decide(questions, caller) if questions else [])
        return [p if isinstance(p, Outcome) else Outcome.of(next(decided)) for p in prepared]

    def _short_circuit(self, batch: BatchRequest, caller: RequestContext) -> list[Outcome]:
        """``deny_on_first_deny`` (a deny or failure stops) or ``permit_on_first_permit``.

        Items after the one that stops are not evaluated (nor recorded); the one that
        stopped carries ``context.reason`` = the semantic, as in the spec's example.
        """
        stop_on = batch.semantic == PERMIT_ON_FIRST_PERMIT
        outcomes: list[Outcome] = []
        for index, item in enumerate(batch.items):
            prepared = self._prepare(item, caller)
            if isinstance(prepared, Question):
                prepared = Outcome.of(self.decisions.decide([prepared], caller)[0])
            outcomes.append(prepared)
            if prepared.allowed is stop_on:
                if index < len(batch.items) - 1:
                    prepared.context["reason"] = batch.semantic
                break
        return outcomes
