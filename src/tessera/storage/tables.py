"""Table definitions (SQLAlchemy Core). Times are UTC epoch seconds as floats.

The alembic migrations under ``migrations/versions`` create exactly these tables;
``tests/unit/storage/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("owner", String(320), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("attributes", JSON, nullable=False),
    Column("segment", String(128), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("resource_uris", JSON, nullable=False),
    Column("max_ttl", Integer, nullable=False),
    Column("require_dpop", Boolean, nullable=False),
    Column("state", String(20), nullable=False),
    Column("state_reason", Text, nullable=True),
    Column("secret_hash", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Index("ix_agents_owner", "owner"),
)

agent_keys = Table(
    "agent_keys",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.id"), primary_key=True),
    Column("kid", String(128), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("jwk", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("removed_at", Float, nullable=True),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_jwk_sealed", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activates_at", Float, nullable=False),
    Column("deactivated_at", Float, nullable=True),
    Column("retired_at", Float, nullable=True),
)

issued_tokens = Table(
    "issued_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("agent_id", String(64), nullable=False),
    Column("task_id", String(128), nullable=True),
    Column("kid", String(128), nullable=False),
    Column("scope", Text, nullable=False),
    Column("audience", JSON, nullable=False),
    Column("cnf_jkt", String(64), nullable=True),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_reason", Text, nullable=True),
    # Delegation (RFC 8693): the original subject of the chain (the agent itself for
    # client_credentials, the person or upstream identity for exchanged tokens) and the
    # token this one was exchanged from, so revocation can follow the chain.
    Column("subject", String(320), nullable=True),
    Column("parent_jti", String(64), nullable=True),
    Index("ix_issued_tokens_agent", "agent_id", "expires_at"),
    Index("ix_issued_tokens_subject", "subject", "expires_at"),
    Index("ix_issued_tokens_parent", "parent_jti"),
    Index("ix_issued_tokens_task", "task_id", "expires_at"),
    Index("ix_issued_tokens_expires", "expires_at"),
)

used_jtis = Table(
    "used_jtis",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_used_jtis_expires", "expires_at"),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_changes_created", "created_at"),
)

admin_credentials = Table(
    "admin_credentials",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

server_state = Table(
    "server_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# --- audit trail (tessera.audit) ------------------------------------------------------------

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor_id", String(200), nullable=True),
    Column("subject", String(200), nullable=True),
    Column("task_id", String(128), nullable=True),
    Column("token_hash", String(64), nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("body", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_ts", "ts_ms"),
    Index("ix_audit_type", "type", "ts_ms"),
    Index("ix_audit_subject", "subject", "ts_ms"),
    Index("ix_audit_task", "task_id"),
    Index("ix_audit_token", "token_hash"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("kid", String(128), nullable=False),
    Column("jws", Text, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("anchor_seq", BigInteger, nullable=False),
    Column("anchor_hash", String(64), nullable=False),
)

# --- policy (tessera.policy) ----------------------------------------------------------------

policy_bundles = Table(
    "policy_bundles",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("files", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("activated_at", Float, nullable=True),
)

resources = Table(
    "resources",
    metadata,
    Column("type", String(128), primary_key=True),
    Column("id", String(256), primary_key=True),
    Column("attributes", JSON, nullable=False),
    Column("parents", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# --- federation (tessera.federation) --------------------------------------------------------

trusted_issuers = Table(
    "trusted_issuers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("issuer", String(512), nullable=False, unique=True),
    Column("config", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# --- delegation and tasks (tessera.tasks, tessera.tokens.grants.token_exchange) -------------

# External subject tokens (a person's token from a trusted issuer) reported revoked: they are
# not in issued_tokens, but must not be exchanged again until they would have expired.
revoked_external_tokens = Table(
    "revoked_external_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=False),
    Column("reason", Text, nullable=True),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("agent_id", String(64), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("actions", JSON, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("budget", Integer, nullable=True),
    Column("used", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("closed_at", Float, nullable=True),
    Column("closed_reason", Text, nullable=True),
    Index("ix_tasks_agent", "agent_id", "state"),
    Index("ix_tasks_state_deadline", "state", "deadline"),
)

# --- people and approvals (tessera.identity.people, tessera.access) ------------------------

people = Table(
    "people",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(320), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("groups", JSON, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("totp_sealed", LargeBinary, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
)

person_tokens = Table(
    "person_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("person_id", String(64), ForeignKey("people.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Index("ix_person_tokens_person", "person_id"),
)

access_requests = Table(
    "access_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("auth_req_hash", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("owner", String(320), nullable=False),
    Column("task_id", String(128), nullable=True),
    Column("purpose", Text, nullable=False),
    Column("asked", JSON, nullable=False),
    Column("asked_hash", String(64), nullable=False),
    Column("audience", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("groups", JSON, nullable=False),
    Column("group_index", Integer, nullable=False),
    Column("approvals_required", Integer, nullable=False),
    Column("separation", String(32), nullable=True),
    Column("ttl", Integer, nullable=False),
    Column("poll_interval", Integer, nullable=False),
    Column("risk", Integer, nullable=False),
    Column("policy_version", String(64), nullable=True),
    Column("policies", JSON, nullable=False),
    Column("callback_token", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("escalate_after", Integer, nullable=True),
    Column("escalate_at", Float, nullable=True),
    Column("last_polled_at", Float, nullable=True),
    Column("decided_at", Float, nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("grant_id", String(64), nullable=True),
    Index("ix_access_requests_status", "status", "expires_at"),
    Index("ix_access_requests_agent", "agent_id", "created_at"),
)

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("request_id", String(64), ForeignKey("access_requests.id"), primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("username", String(320), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

access_grants = Table(
    "access_grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("asked", JSON, nullable=False),
    Column("asked_hash", String(64), nullable=False),
    Column("granted_by", String(320), nullable=False),
    Column("justification", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_reason", Text, nullable=True),
    Column("jtis", JSON, nullable=False),
    Column("reviewed_at", Float, nullable=True),
    Column("reviewed_by", String(320), nullable=True),
    Column("review_note", Text, nullable=True),
    Index("ix_access_grants_agent", "agent_id", "expires_at"),
    Index("ix_access_grants_kind", "kind", "expires_at"),
)

# --- continuous verification (tessera.detect, tessera.response) ------------------------------

agent_risk = Table(
    "agent_risk",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("score", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("learning", Boolean, nullable=False),
    Column("profile", JSON, nullable=True),
    Column("updated_at", Float, nullable=False),
)

agent_responses = Table(
    "agent_responses",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("approvals_remaining", Integer, nullable=False),
    Column("ttl_cap", Integer, nullable=True),
    Column("reason", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
)

kill_rules = Table(
    "kill_rules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(320), nullable=False),
    Column("reason", Text, nullable=False),
    Column("revoked_tokens", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("released_at", Float, nullable=True),
    Column("released_reason", Text, nullable=True),
    Index("ix_kill_rules_active", "released_at", "scope", "target"),
)

playbooks = Table(
    "playbooks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

playbook_firings = Table(
    "playbook_firings",
    metadata,
    Column("playbook", String(100), primary_key=True),
    Column("agent_id", String(64), primary_key=True),
    Column("fired_at", Float, nullable=False),
)

set_receivers = Table(
    "set_receivers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
