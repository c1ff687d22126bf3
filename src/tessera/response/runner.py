"""Running playbooks: match each scored event against the triggers, honour cooldowns, act.

The runner listens to the risk engine (on the event stream's thread, never on a
request). A playbook fires for an active agent when every condition of its
``when`` holds; its cooldown is claimed in ``playbook_firings`` with an atomic
conditional upsert, so two replicas never both fire it for the same agent within
the cooldown. Every action is audited (``response.action``) with the playbook,
the score and the reasons that triggered it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from tessera.audit.records import AuditRecord
from tessera.audit.service import SYSTEM, Auditor, RequestContext, event, record_revocations
from tessera.audit.writer import CheckpointSigner
from tessera.clock import Clock
from tessera.detect.detectors import Finding
from tessera.detect.observations import Observation
from tessera.detect.risk import RiskView
from tessera.errors import Conflict, NotFound
from tessera.events.change_feed import Change, publish
from tessera.events.security_events import (
    CAEP_RISK_LEVEL_CHANGE,
    Deliverer,
    Delivery,
    risk_level_change_event,
    security_event_token,
)
from tessera.identity.agents import Transition
from tessera.identity.service import AgentService
from tessera.ids import IdGenerator
from tessera.response.controls import Control, ResponseControls, save_control
from tessera.response.playbooks import Action, Playbook, default_playbooks, parse_document
from tessera.response.receivers import Receivers
from tessera.storage.database import reading, writing
from tessera.storage.tables import playbook_firings, playbooks, server_state
from tessera.storage.upsert import upsert
from tessera.tokens.revocation import RevocationState, revoke_tokens

log = logging.getLogger(__name__)
PLAYBOOKS_CHANGED = "playbooks"
#: ``server_state`` row that marks a set as applied (so an empty set means "none", not "default").
APPLIED = "playbooks.applied"


def reasons_of(view: RiskView, limit: int = 5) -> list[dict[str, Any]]:
    return [
        {"detector": r.detector, "points": round(w, 1), "detail": r.detail[:200]}
        for r, w in view.reasons[:limit]
    ]


class PlaybookRunner:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor | None,
        *,
        agents: AgentService,
        revocation: RevocationState,
        controls: ResponseControls,
        receivers: Receivers,
        deliverer: Deliverer,
        signer: Callable[[], CheckpointSigner | None],
        issuer: str,
        alert_url: str | None = None,
        owner_url: str | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._auditor = auditor
        self._agents = agents
        self._revocation = revocation
        self._controls = controls
        self._receivers = receivers
        self.deliverer = deliverer
        self._signer = signer
        self._issuer = issuer
        self._alert_url = alert_url
        self._owner_url = owner_url
        self.playbooks: list[Playbook] = default_playbooks()
        self.source = "default"
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._last_score: dict[str, int] = {}

    # --- the set of playbooks ------------------------------------------------------------

    def load(self) -> None:
        with reading(self._engine) as conn:
            rows = conn.execute(select(playbooks.c.spec).order_by(playbooks.c.position)).all()
            applied = conn.execute(select(server_state.c.name).where(server_state.c.name == APPLIED)).first()
        if applied is not None:  # an applied set, possibly empty (playbooks turned off)
            self.playbooks = parse_document({"playbooks": [r.spec for r in rows]})
            self.source = "applied"
        else:
            self.playbooks = default_playbooks()
            self.source = "default"

    def on_change(self, _change: Change) -> None:
        self.load()

    def apply(self, books: list[Playbook], context: RequestContext, *, note: str | None = None) -> None:
        now = self._clock.now()
        with writing(self._engine) as conn:
            conn.execute(delete(playbooks))
            for position, book in enumerate(books):
                conn.execute(
                    playbooks.insert().values(
                        name=book.name, position=position, spec=book.to_json(), updated_at=now
                    )
                )
            upsert(conn, server_state, ("name",), {"name": APPLIED, "value": b"1", "updated_at": now})
            publish(conn, PLAYBOOKS_CHANGED, "playbooks", {"names": [b.name for b in books]}, now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "playbooks.applied",
                        context,
                        reason=note,
                        data={"names": [b.name for b in books][:50]},
                    ),
                )
        self.load()

    def matches_applied(self, books: list[Playbook]) -> bool:
        return self.source == "applied" and [b.to_json() for b in books] == [
            b.to_json() for b in self.playbooks
        ]

    # --- events --------------------------------------------------------------------------

    def on_record(self, record: AuditRecord) -> None:
        """A person released or resumed an agent: the playbooks' controls on it end too."""
        if record.type in ("agent.released", "agent.resumed") and record.subject:
            agent_id = record.subject
            if self._controls.get(agent_id) != Control():
                now = self._clock.now()
                with writing(self._engine) as conn:
                    save_control(conn, agent_id, Control(), now)
                self._controls.set(agent_id, Control())
            self._last_score.pop(agent_id, None)

    def on_risk(self, obs: Observation, findings: list[Finding], view: RiskView) -> None:
        now = obs.at
        for finding in findings:
            window = self._recent.setdefault((obs.agent_id, finding.detector), deque(maxlen=1000))
            window.append(now)
        previous = self._last_score.get(obs.agent_id)
        self._last_score[obs.agent_id] = view.score
        if self._revocation.agent_state(obs.agent_id) != "active":
            return
        fired = {f.detector for f in findings}
        for book in self.playbooks:
            if self._triggered(book, obs.agent_id, fired, view, now) and self._claim(book, obs.agent_id, now):
                self._fire(book, obs.agent_id, view, previous)

    def _triggered(self, book: Playbook, agent_id: str, fired: set[str], view: RiskView, now: float) -> bool:
        trigger = book.trigger
        if trigger.risk_at_least is not None and view.score < trigger.risk_at_least:
            return False
        if trigger.detectors and not fired.intersection(trigger.detectors):
            return False
        if trigger.count is not None:
            window = self._recent.get((agent_id, trigger.count.detector), deque())
            if sum(1 for at in window if at >= now - trigger.count.within) < trigger.count.at_least:
                return False
        return True

    def _claim(self, book: Playbook, agent_id: str, now: float) -> bool:
        """Take the cooldown atomically (on every replica): True if this firing may go ahead."""
        with writing(self._engine) as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(playbook_firings).values(
                playbook=book.name, agent_id=agent_id, fired_at=now
            )
            statement = statement.on_conflict_do_update(
                index_elements=["playbook", "agent_id"],
                set_={"fired_at": now},
                where=playbook_firings.c.fired_at <= now - book.cooldown,
            )
            # RETURNING, not rowcount: psycopg reports -1 for an upsert's rowcount.
            return conn.execute(statement.returning(playbook_firings.c.fired_at)).first() is not None

    # --- actions -------------------------------------------------------------------------

    def _fire(self, book: Playbook, agent_id: str, view: RiskView, previous: int | None) -> None:
        context = RequestContext(actor=SYSTEM, reason=f"playbook '{book.name}'")
        for action in book.actions:
            try:
                self._act(book, action, agent_id, view=view, previous=previous, context=context)
            except Exception:
                log.exception("playbook %s: action %s on agent %s failed", book.name, action.kind, agent_id)

    def _record(self, book: Playbook, action: Action, agent_id: str, view: RiskView, **extra: Any) -> None:
        if self._auditor is None:
            return
        data = {
            "playbook": book.name,
            "action": action.kind,
            "value": action.value,
            "score": view.score,
            "reasons": reasons_of(view),
            **extra,
        }
        self._auditor.record_async(
            event(
                "response.action",
                RequestContext(SYSTEM, reason=f"playbook '{book.name}'"),
                subject=agent_id,
                data=data,
            )
        )

    def _act(
        self,
        book: Playbook,
        action: Action,
        agent_id: str,
        *,
        view: RiskView,
        previous: int | None,
        context: RequestContext,
    ) -> None:
        now = self._clock.now()
        kind = action.kind
        if kind in ("require_approval", "cap_token_lifetime"):
            current = self._controls.get(agent_id)
            control = (
                Control(int(action.value or 0), current.ttl_cap, f"playbook '{book.name}'")
                if kind == "require_approval"
                else Control(current.approvals_remaining, action.value, f"playbook '{book.name}'")
            )
            with writing(self._engine) as conn:
                save_control(conn, agent_id, control, now)
            self._controls.set(agent_id, control)
            self._record(book, action, agent_id, view)
        elif kind == "revoke_tokens":
            reason = f"playbook '{book.name}' at risk {view.score}"
            with writing(self._engine) as conn:
                revoked = revoke_tokens(conn, now=now, reason=reason, agent_id=agent_id)
                if self._auditor is not None:
                    record_revocations(
                        self._auditor, conn, context, revoked, agent_id=agent_id, reason=reason
                    )
            self._revocation.mark_revoked(revoked)
            self._record(book, action, agent_id, view, revoked_tokens=len(revoked))
        elif kind == "quarantine":
            detail = "; ".join(r["detector"] for r in reasons_of(view, 3))
            try:
                self._agents.transition(
                    agent_id,
                    Transition.QUARANTINE,
                    f"playbook '{book.name}': risk {view.score} ({detail})",
                    context,
                )
            except (Conflict, NotFound) as exc:
                self._record(book, action, agent_id, view, skipped=exc.description[:200])
                return
            self._record(book, action, agent_id, view)
        elif kind == "alert":
            self._alert(book, action, agent_id, view, previous)
        elif kind == "notify_owner":
            self._notify_owner(book, action, agent_id, view)

    def _alert(
        self, book: Playbook, action: Action, agent_id: str, view: RiskView, previous: int | None
    ) -> None:
        now = self._clock.now()
        body = {
            "type": "tessera.alert",
            "playbook": book.name,
            "agent_id": agent_id,
            "score": view.score,
            "reasons": reasons_of(view),
            "at": now,
        }
        sent: list[str] = []
        if self._alert_url:
            self.deliverer.submit(Delivery(self._alert_url, json_body=body))
            sent.append(self._alert_url)
        signer = self._signer()
        receivers = self._receivers.urls()
        if receivers and signer is None:
            log.error("no signing key: security events for agent %s not sent", agent_id)
        elif signer is not None:
            detail = ", ".join(r["detector"] for r in reasons_of(view, 3)) or "risk"
            risk_event = risk_level_change_event(
                score=view.score, previous=previous, reason=f"{book.name}: {detail}", at=now
            )
            for url in receivers:
                token = security_event_token(
                    private_key=signer.private_key,
                    kid=signer.kid,
                    alg=signer.alg,
                    issuer=self._issuer,
                    audience=url,
                    jti=self._ids.new("set"),
                    now=now,
                    subject=agent_id,
                    events={CAEP_RISK_LEVEL_CHANGE: risk_event},
                )
                self.deliverer.submit(Delivery(url, set_token=token))
                sent.append(url)
        self._record(book, action, agent_id, view, sent_to=sent[:20])

    def _notify_owner(self, book: Playbook, action: Action, agent_id: str, view: RiskView) -> None:
        agent = self._agents.find(agent_id)
        owner = agent.owner if agent else None
        if self._owner_url and owner:
            body = {
                "type": "tessera.owner_notice",
                "owner": owner,
                "agent_id": agent_id,
                "playbook": book.name,
                "score": view.score,
                "reasons": reasons_of(view),
                "at": self._clock.now(),
            }
            self.deliverer.submit(Delivery(self._owner_url, json_body=body))
        self._record(book, action, agent_id, view, owner=owner, sent=bool(self._owner_url and owner))
