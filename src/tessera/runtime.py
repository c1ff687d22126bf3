"""Wiring: builds the core services from settings, with no web framework involved.

``Runtime.start()`` migrates the schema, loads keys and in-memory state, creates
the bootstrap admin credential and starts the change-feed follower and the
maintenance loop (key rotation, pruning). ``server/`` and tests use it alike.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete

from tessera.access.binding import ApprovalEnforcer
from tessera.access.flows import ActionRequests, TokenApprovals
from tessera.access.grants import GRANT_CHANGED, GrantService
from tessera.access.maintenance import maintain as maintain_requests
from tessera.access.notify import Notifier
from tessera.access.rules import ApprovalDefaults
from tessera.access.service import AccessService
from tessera.access.task_service import TASK_CHANGED, TaskService
from tessera.audit.forwarder import AuditForwarder
from tessera.audit.records import SecretHasher
from tessera.audit.service import Auditor, RequestContext
from tessera.audit.sinks import HttpSink, JsonlFileSink, Sink
from tessera.audit.writer import AuditWriter, CheckpointSigner
from tessera.clock import Clock, SystemClock
from tessera.config import Settings
from tessera.detect.detectors import DEFAULT_POINTS, Tuning
from tessera.detect.engine import RISK_CHANGED, RiskEngine
from tessera.detect.risk import RiskBoard
from tessera.detect.stream import EventStream
from tessera.events.change_feed import Change, ChangeFollower, latest_seq
from tessera.events.revocation_feed import FEED_KINDS, RevocationFeed
from tessera.events.security_events import Deliverer
from tessera.federation.identities import FederatedIdentities
from tessera.federation.jwks import JwksCache, JwksFetcher
from tessera.federation.service import ISSUER_CHANGED, TrustedIssuerService
from tessera.federation.verifier import FederatedTokenVerifier
from tessera.identity.admin_credentials import ADMIN_CHANGED, AdminCredentials
from tessera.identity.agents import Agent
from tessera.identity.people import PeopleService
from tessera.identity.service import AgentService
from tessera.ids import IdGenerator, RandomIds
from tessera.policy.bundle import load_bundle
from tessera.policy.context import ContextBuilder
from tessera.policy.decisions import DecisionService
from tessera.policy.entities import EntityIndex
from tessera.policy.issuance import IssuancePolicy
from tessera.policy.pdp import PolicyDecisionPoint
from tessera.policy.service import POLICY_CHANGED, RESOURCE_CHANGED, PolicyService, ResourceService
from tessera.response.controls import RESPONSE_CHANGED, ResponseControls
from tessera.response.guard import DecisionGuard, ResponseGuard, owner_lookup
from tessera.response.kill_switch import KILL_CHANGED, KillRules, KillSwitch
from tessera.response.playbooks import parse_yaml
from tessera.response.receivers import RECEIVERS_CHANGED, Receivers
from tessera.response.runner import PLAYBOOKS_CHANGED, PlaybookRunner
from tessera.storage.agents import SqlAgentRepository
from tessera.storage.database import create_database_engine, migrate, reading, writing
from tessera.storage.single_use import SqlSingleUseStore
from tessera.storage.tables import changes
from tessera.tokens.client_auth import ClientAuthenticator
from tessera.tokens.delegation import LocalSubjectTokens
from tessera.tokens.dpop import NonceIssuer
from tessera.tokens.endpoint import TokenEndpoint
from tessera.tokens.grants.ciba import CibaGrant
from tessera.tokens.grants.client_credentials import ClientCredentialsGrant
from tessera.tokens.grants.jwt_bearer import JwtBearerGrant
from tessera.tokens.grants.token_exchange import ExchangeLimits, TokenExchangeGrant
from tessera.tokens.introspection import Introspector, Revoker, TokenValidator
from tessera.tokens.issuer import TokenIssuer
from tessera.tokens.revocation import AGENT_CHANGED, TOKENS_REVOKED, RevocationState
from tessera.tokens.sealing import Sealer, load_or_create_master_key
from tessera.tokens.signing_keys import KEYS_CHANGED, KeyRing, SigningKeyManager
from tessera.tokens.subject_tokens import SubjectTokenVerifier

log = logging.getLogger(__name__)
CHANGE_RETENTION_SECONDS = 7 * 86400


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    ids: IdGenerator = field(default_factory=RandomIds)
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.issuer = settings.issuer_url
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.engine = create_database_engine(settings.sqlalchemy_url)
        master_key = load_or_create_master_key(
            settings.master_key.get_secret_value() if settings.master_key else None, settings.master_key_path
        )
        self.sealer = Sealer(master_key)
        grace = settings.max_access_token_ttl + settings.clock_leeway
        self.audit_writer = AuditWriter(
            self.engine,
            self.clock,
            self.ids,
            issuer=self.issuer,
            signer=self._checkpoint_signer,
            max_delay=settings.audit_batch_delay_ms / 1000,
            ack_timeout=settings.audit_ack_timeout,
            checkpoint_every=settings.audit_checkpoint_every,
            checkpoint_interval=settings.audit_checkpoint_interval,
        )
        self.auditor = Auditor(
            self.audit_writer, self.clock, self.ids, SecretHasher(self.sealer.derive("tessera/audit-hmac/v1"))
        )
        self.keys = SigningKeyManager(
            self.engine,
            self.sealer,
            self.clock,
            rotation_interval=settings.signing_key_rotation_interval,
            publish_delay=settings.signing_key_publish_delay,
            verify_grace=grace,
            auditor=self.auditor,
        )
        self._keyring = KeyRing([], grace)
        self.revocation = RevocationState()
        self.entities = EntityIndex()
        self.pdp = PolicyDecisionPoint(
            self.clock, self.ids, self.entities, timeout_ms=settings.policy_timeout_ms
        )
        self.contexts = ContextBuilder(settings.network_zones)
        self.auditor.zone_of = self.contexts.zone_of
        self.policies = PolicyService(self.engine, self.clock, self.pdp, self.auditor)
        self.resources = ResourceService(self.engine, self.clock, self.pdp, self.auditor)
        self.decisions = DecisionService(
            self.pdp,
            self.contexts,
            self.clock,
            self.revocation,
            self.auditor,
            fail_open=settings.audit_decisions_fail_open,
        )
        self.tasks = TaskService(
            self.engine,
            self.clock,
            self.ids,
            self.revocation,
            self.auditor,
            require_registered=settings.require_registered_tasks,
        )
        self.decisions.tasks = self.tasks
        self.admin = AdminCredentials(self.engine, self.clock)
        self.agent_repository = SqlAgentRepository()
        self.agents = AgentService(
            self.engine,
            self.agent_repository,
            self.clock,
            self.ids,
            self.revocation,
            default_max_ttl=settings.access_token_ttl,
            ttl_cap=settings.max_access_token_ttl,
            allow_client_secret=settings.allow_client_secret,
            auditor=self.auditor,
            listeners=[self.entities.put_agent],
        )
        self.authenticator = ClientAuthenticator(
            issuer=self.issuer,
            lookup=self.agents.find,
            leeway=settings.clock_leeway,
            max_assertion_lifetime=settings.assertion_max_lifetime,
            allow_client_secret=settings.allow_client_secret,
        )
        self._build_verification()
        self.issuer_service = TokenIssuer(
            self.engine,
            self.clock,
            self.ids,
            issuer=self.issuer,
            keyring=self.keyring,
            auditor=self.auditor,
            max_token_bytes=settings.max_token_bytes,
            guard=ResponseGuard(self.kill_rules, self.controls),
        )
        self.jwks_cache = JwksCache(
            JwksFetcher(
                timeout=settings.federation_jwks_timeout, max_bytes=settings.federation_jwks_max_bytes
            ),
            self.clock,
            cache_seconds=settings.federation_jwks_cache_seconds,
            refresh_interval=settings.federation_jwks_refresh_interval,
        )
        self.trusted_issuers = TrustedIssuerService(
            self.engine,
            self.clock,
            self.ids,
            default_audiences=(self.issuer, settings.token_endpoint),
            ttl_cap=settings.max_access_token_ttl,
            auditor=self.auditor,
            on_forget=self.jwks_cache.forget,
        )
        #: Verifies trusted issuers' tokens: jwt-bearer assertions and RFC 8693 subject tokens.
        self.federation_verifier = FederatedTokenVerifier(
            self.trusted_issuers, self.jwks_cache, leeway=settings.clock_leeway
        )
        self.federated_identities = FederatedIdentities(
            self.engine,
            self.agent_repository,
            self.clock,
            self.revocation,
            lookup=self.agents.find,
            identity_ttl=settings.federation_identity_ttl,
            auditor=self.auditor,
            listeners=[self.entities.put_agent],
        )
        self._build_access()
        nonces = (
            NonceIssuer(self.sealer.derive("tessera/dpop-nonce/v1"), settings.dpop_nonce_lifetime)
            if settings.dpop_nonce_required
            else None
        )
        self.validator = TokenValidator(
            issuer=self.issuer,
            clock=self.clock,
            keyring=self.keyring,
            revocation=self.revocation,
            leeway=settings.clock_leeway,
            max_bytes=settings.max_token_bytes,
            max_lifetime=settings.max_access_token_ttl,
            stopped=self.decision_guard.token_stopped,
        )
        #: Who may issue an RFC 8693 subject token: this server, then trusted issuers (federation).
        self.subject_verifiers: list[SubjectTokenVerifier] = [
            LocalSubjectTokens(self.issuer, self.validator.verify),
            self.federation_verifier,
        ]
        issuance_policy = IssuancePolicy(self.pdp, self.contexts, self.clock, risk=self.decision_guard.risk)
        self.token_endpoint = TokenEndpoint(
            clock=self.clock,
            authenticator=self.authenticator,
            grants=[
                ClientCredentialsGrant(
                    self.issuer_service,
                    self.clock,
                    audience_default=self.issuer,
                    default_ttl=settings.access_token_ttl,
                    max_ttl=settings.max_access_token_ttl,
                    policy=issuance_policy,
                    tasks=self.tasks,
                    approvals=self.token_approvals,
                ),
                CibaGrant(self.issuer_service, self.clock, self.token_approvals),
                TokenExchangeGrant(
                    self.issuer_service,
                    self.clock,
                    self.subject_verifiers,
                    ExchangeLimits(
                        audience_default=self.issuer,
                        default_ttl=settings.access_token_ttl,
                        max_ttl=settings.max_access_token_ttl,
                        max_depth=settings.max_delegation_depth,
                    ),
                    server_issuer=self.issuer,
                    policy=issuance_policy,
                    is_revoked=self.revocation.is_jti_revoked,
                    tasks=self.tasks,
                ),
                JwtBearerGrant(
                    self.issuer_service,
                    self.clock,
                    self.federation_verifier,
                    self.federated_identities,
                    audience_default=self.issuer,
                    default_ttl=settings.access_token_ttl,
                    max_ttl=settings.max_access_token_ttl,
                    leeway=settings.clock_leeway,
                    policy=issuance_policy,
                    tasks=self.tasks,
                ),
            ],
            token_endpoint_url=settings.token_endpoint,
            dpop_max_age=settings.dpop_proof_max_age,
            leeway=settings.clock_leeway,
            nonces=nonces,
            auditor=self.auditor,
        )
        self.introspector = Introspector(self.validator, self.auditor)
        self.revoker = Revoker(self.engine, self.clock, self.validator, self.revocation, self.auditor)
        self.revoker.subject_verifiers = self.subject_verifiers
        self.follower: ChangeFollower | None = None
        self._http_sink: HttpSink | None = None
        self._forwarder: AuditForwarder | None = None
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None

    def _build_access(self) -> None:
        """People, just-in-time access and approvals (``tessera.access``)."""
        settings = self.settings
        self.notifier = Notifier(
            tuple(settings.approval_webhook_urls),
            allow_private_callbacks=settings.access_callback_allow_private,
        )
        self.people = PeopleService(
            self.engine, self.clock, self.ids, self.sealer, self.auditor, token_ttl=settings.person_token_ttl
        )
        self.grants = GrantService(
            self.engine,
            self.clock,
            self.ids,
            self.auditor,
            revocation=self.revocation,
            notifier=self.notifier,
            break_glass_max_ttl=settings.break_glass_max_ttl,
        )
        self.access = AccessService(
            self.engine,
            self.clock,
            self.ids,
            self.auditor,
            grants=self.grants,
            notifier=self.notifier,
            defaults=ApprovalDefaults(
                default_group=settings.approval_default_group,
                escalation_groups=tuple(settings.approval_escalation_groups),
                escalate_after=settings.approval_escalate_after,
                timeout=settings.approval_timeout,
                grant_ttl=settings.access_grant_ttl,
                grant_max_ttl=settings.access_grant_max_ttl,
            ),
            auth_req_key=self.sealer.derive("tessera/auth-req-id/v1"),
            poll_interval=settings.ciba_poll_interval,
            risk_of=self.agent_risk,
            lookup_agent=self.lookup_agent,
        )
        self.decisions.approvals = ApprovalEnforcer(self.clock, self.grants)
        self.action_requests = ActionRequests(self.access, self.decisions, self.entities)
        self.token_approvals = TokenApprovals(
            self.access,
            self.grants,
            self.clock,
            default_audience=self.issuer,
            max_ttl=settings.max_access_token_ttl,
        )

    def agent_risk(self, agent_id: str) -> int:
        """The agent's current risk score (0-100), as the PDP sees it in ``context.risk``:
        the one place approvals read it."""
        return self.decision_guard.risk(agent_id, self.clock.now())[0]

    def keyring(self) -> KeyRing:
        return self._keyring

    def _build_verification(self) -> None:
        """Continuous verification: the event stream, the risk engine, response controls, kill switch."""
        settings = self.settings
        self.events = EventStream(settings.detect_queue_size)
        if settings.detect_enabled:
            self.auditor.subscribe(self.events.offer)
        tuning = Tuning(
            learning_events=settings.risk_learning_events,
            learning_seconds=settings.risk_learning_seconds,
            half_life=settings.risk_half_life,
            points={**DEFAULT_POINTS, **settings.risk_points},
            model_threshold=settings.risk_model_threshold,
        )
        self.risk_board = RiskBoard(settings.risk_half_life)
        self.risk = RiskEngine(
            self.engine,
            self.clock,
            self.risk_board,
            tuning,
            known_agent=lambda agent_id: self.revocation.agent_state(agent_id) is not None,
            origin=self.ids.new("rep"),
            publish_delta=settings.risk_publish_delta,
            snapshot_interval=settings.risk_snapshot_interval,
        )
        self.events.subscribe(self.risk.handle)
        self.kill_rules = KillRules()
        self.controls = ResponseControls()
        self.kill_switch = KillSwitch(
            self.engine,
            self.clock,
            self.ids,
            self.kill_rules,
            revocation=self.revocation,
            auditor=self.auditor,
        )
        self.receivers = Receivers(
            self.engine, self.clock, self.ids, self.auditor, configured=settings.set_receivers
        )
        self.playbooks = PlaybookRunner(
            self.engine,
            self.clock,
            self.ids,
            self.auditor,
            agents=self.agents,
            revocation=self.revocation,
            controls=self.controls,
            receivers=self.receivers,
            deliverer=Deliverer(timeout=settings.webhook_timeout),
            signer=self._checkpoint_signer,
            issuer=self.issuer,
            alert_url=settings.alert_webhook_url,
            owner_url=settings.owner_webhook_url,
        )
        self.risk.add_listener(self.playbooks.on_risk)
        self.events.subscribe(self.playbooks.on_record)
        self.revocation_feed = RevocationFeed(
            snapshot=self._revocation_snapshot, owner_agents=self._owner_agents
        )
        self.decision_guard = DecisionGuard(
            self.risk.view, self.controls, self.kill_rules, owner_lookup(self.entities)
        )
        self.decisions.verification = self.decision_guard

    def _checkpoint_signer(self) -> CheckpointSigner | None:
        key = self._keyring.signing_key(self.clock.now())
        return CheckpointSigner(key.private_key, key.kid, key.alg) if key else None

    def reload_keys(self) -> None:
        self._keyring = self.keys.load()

    def _reload_agent_entity(self, change: Change) -> None:
        agent = self.agents.find(change.subject)
        if agent is not None:
            self.entities.put_agent(agent)

    def lookup_agent(self, agent_id: str) -> Agent | None:
        return self.agents.find(agent_id)

    def start(self, *, background: bool = True) -> str | None:
        """Prepare storage and state; returns the admin token if this start created it."""
        migrate(self.engine)
        position = latest_seq(self.engine)
        self.keys.ensure_signing_key()
        self.reload_keys()
        self.revocation.load(self.engine, self.clock.now())
        self.kill_rules.load(self.engine)
        self.controls.load(self.engine)
        self.risk.load()
        self.receivers.load()
        self.playbooks.load()
        self.entities.set_agents(self.agents.list())
        self.resources.load()
        self.tasks.load()
        self.trusted_issuers.load()
        self.grants.load()
        self.policies.ensure_active()
        settings = self.settings
        if settings.policy_bundle is not None:
            bundle = load_bundle(settings.policy_bundle)
            if bundle.version != self.pdp.version:
                note = f"TESSERA_POLICY_BUNDLE={settings.policy_bundle}"
                self.policies.apply(bundle, RequestContext(), note=note)
        self._apply_playbook_file()
        if settings.authzen_allow_anonymous:
            log.warning(
                "TESSERA_AUTHZEN_ALLOW_ANONYMOUS is on: the AuthZEN API answers callers WITHOUT "
                "credentials. For certification runs only; never in production."
            )
        created = self.admin.bootstrap(
            settings.admin_token_path,
            settings.admin_token.get_secret_value() if settings.admin_token else None,
        )
        self.revocation_feed.reset(position)
        self.follower = ChangeFollower(
            self.engine, self.clock, start_after=position, poll_interval=settings.change_poll_interval
        )
        self._follow_changes(self.follower)
        if background:
            self._start_sinks()
            self.notifier.start()
            self.events.start()
            self.playbooks.deliverer.start()
            self.audit_writer.start()
            self.follower.start()
            self._maintenance = threading.Thread(
                target=self._maintain_loop, name="tessera-maintenance", daemon=True
            )
            self._maintenance.start()
        return created

    def _follow_changes(self, follower: ChangeFollower) -> None:
        """Every kind of change on the feed, and the in-memory state it keeps current."""
        follower.on(KEYS_CHANGED, lambda _change: self.reload_keys())
        follower.on(TOKENS_REVOKED, self.revocation.on_tokens_revoked)
        follower.on(AGENT_CHANGED, self.revocation.on_agent_changed)
        follower.on(ADMIN_CHANGED, lambda _change: self.admin.load())
        follower.on(AGENT_CHANGED, self._reload_agent_entity)
        follower.on(POLICY_CHANGED, self.policies.on_change)
        follower.on(RESOURCE_CHANGED, self.resources.on_change)
        follower.on(TASK_CHANGED, self.tasks.on_change)
        follower.on(ISSUER_CHANGED, self.trusted_issuers.on_change)
        follower.on(GRANT_CHANGED, self.grants.on_change)
        follower.on(KILL_CHANGED, self.kill_rules.on_change)
        follower.on(RESPONSE_CHANGED, self.controls.on_change)
        follower.on(RISK_CHANGED, self.risk.on_change)
        follower.on(PLAYBOOKS_CHANGED, self.playbooks.on_change)
        for kind in FEED_KINDS:
            follower.on(kind, self.revocation_feed.on_change)
        follower.on(RECEIVERS_CHANGED, self.receivers.on_change)

    def _revocation_snapshot(self) -> dict[str, Any]:
        return {
            "revoked": self.revocation.revoked_tokens(),
            "agents": self.revocation.unusable_agents(self.clock.now()),
            "kills": [rule.to_json() for rule in self.kill_rules.active()],
        }

    def _owner_agents(self, owner: str) -> list[str]:
        return [a.id for a in self.agents.list(owner=owner)]

    def _apply_playbook_file(self) -> None:
        """Playbooks from a file (TESSERA_PLAYBOOKS_FILE, HOME/playbooks.yaml or the policy
        bundle's playbooks.yaml, the first that exists) are applied unless already active."""
        settings = self.settings
        candidates = [settings.playbooks_file, settings.home / "playbooks.yaml"]
        if settings.policy_bundle is not None:
            candidates.append(settings.policy_bundle / "playbooks.yaml")
        path = next((c for c in candidates if c is not None and c.is_file()), None)
        if path is None:
            return
        books = parse_yaml(path.read_text(encoding="utf-8"))
        if not self.playbooks.matches_applied(books):
            self.playbooks.apply(books, RequestContext(), note=f"playbooks file {path}")

    def _start_sinks(self) -> None:
        """Forward every committed audit record to the configured SIEM sinks, in chain order."""
        settings = self.settings
        sinks: list[Sink] = []
        if settings.audit_file_sink is not None:
            sinks.append(
                JsonlFileSink(
                    settings.audit_file_sink,
                    max_bytes=settings.audit_file_max_bytes,
                    backups=settings.audit_file_backups,
                )
            )
        if settings.audit_http_sink_url:
            token = settings.audit_http_sink_token
            headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
            self._http_sink = HttpSink(settings.audit_http_sink_url, headers=headers)
            self._http_sink.start()
            sinks.append(self._http_sink)
        if sinks:
            self._forwarder = AuditForwarder(
                self.engine, sinks, poll_interval=settings.change_poll_interval, clock=self.clock
            )
            self._forwarder.start()

    def maintain(self) -> None:
        """Scheduled work: key rotation, expiring tasks past their deadline, pruning old rows."""
        now = self.clock.now()
        if self.keys.rotate_if_due():
            self.reload_keys()
        self.audit_writer.checkpoint_if_due()
        maintain_requests(self.access)
        self.risk.snapshot()
        self.revocation.prune(now, self.settings.clock_leeway)
        self.tasks.expire_due()
        with writing(self.engine) as conn:
            SqlSingleUseStore().prune(conn, now)
            conn.execute(delete(changes).where(changes.c.created_at < now - CHANGE_RETENTION_SECONDS))

    def _maintain_loop(self) -> None:
        while not self._stop.wait(self.settings.maintenance_interval):
            try:
                self.maintain()
            except Exception:
                log.exception("maintenance failed; will retry")
            # The signing key may activate by time alone; a reload keeps the ring exact.
            try:
                self.reload_keys()
            except Exception:
                log.exception("reloading signing keys failed")

    def healthy(self) -> bool:
        with reading(self.engine) as conn:
            conn.exec_driver_sql("SELECT 1")
        return True

    def stop(self) -> None:
        self._stop.set()
        self.notifier.stop()
        self.audit_writer.stop()
        self.events.stop()
        self.playbooks.deliverer.stop()
        try:
            self.risk.snapshot()
        except Exception:
            log.exception("final risk snapshot failed")
        if self._forwarder is not None:
            self._forwarder.stop()
        if self._http_sink is not None:
            self._http_sink.stop()
        if self.follower is not None:
            self.follower.stop()
        if self._maintenance is not None:
            self._maintenance.join(timeout=5)
        self.engine.dispose()
