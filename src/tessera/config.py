"""Settings, read from ``TESSERA_*`` environment variables and an optional ``tessera.toml``.

Precedence: explicit arguments, then the environment, then ``tessera.toml`` in the
working directory (or the file named by ``TESSERA_CONFIG``), then defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".tessera"), description="data directory")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home")
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    issuer: str | None = Field(default=None, description="issuer identifier; default http://HOST:PORT")
    master_key: SecretStr | None = Field(default=None, description="base64url 32-byte key-encryption key")
    admin_token: SecretStr | None = Field(default=None, description="used by the CLI")

    access_token_ttl: int = Field(default=300, ge=10, le=86400)
    max_access_token_ttl: int = Field(default=3600, ge=10, le=86400)
    assertion_max_lifetime: int = Field(default=300, ge=10, le=3600)
    clock_leeway: int = Field(default=30, ge=0, le=300)
    dpop_proof_max_age: int = Field(default=60, ge=5, le=600)
    dpop_nonce_required: bool = False
    dpop_nonce_lifetime: int = Field(default=300, ge=10, le=3600)
    allow_client_secret: bool = False

    signing_key_rotation_interval: int = Field(default=30 * 86400, ge=60)
    signing_key_publish_delay: int = Field(default=60, ge=0, le=86400)
    maintenance_interval: float = Field(default=30.0, gt=0)
    change_poll_interval: float = Field(default=0.2, gt=0, le=10)

    audit_checkpoint_every: int = Field(default=1000, ge=1, le=1_000_000)
    audit_checkpoint_interval: float = Field(default=60.0, gt=0)
    audit_batch_delay_ms: float = Field(default=2.0, ge=0, le=100)
    audit_ack_timeout: float = Field(default=10.0, gt=0, le=120)
    audit_decisions_fail_open: bool = Field(
        default=False, description="if the audit log is down, decisions still answer (logged loudly)"
    )
    audit_file_sink: Path | None = Field(default=None, description="forward records to this JSONL file")
    audit_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    audit_file_backups: int = Field(default=5, ge=0, le=100)
    audit_http_sink_url: str | None = Field(default=None, description="forward records to this URL")
    audit_http_sink_token: SecretStr | None = Field(
        default=None, description="bearer token for the HTTP sink"
    )

    network_zones: dict[str, str] = Field(
        default_factory=lambda: {"127.0.0.0/8": "local", "::1/128": "local"},
        description="CIDR → zone name, for context.network_zone",
    )
    policy_timeout_ms: float = Field(default=100.0, gt=0, le=10_000)
    policy_bundle: Path | None = Field(
        default=None, description="bundle directory applied at start unless its version is already active"
    )
    authzen_allow_anonymous: bool = Field(
        default=False,
        description="AuthZEN API without credentials: for certification runs only (logged loudly)",
    )

    person_token_ttl: int = Field(default=12 * 3600, ge=60, le=30 * 86400, description="personal API tokens")
    approval_default_group: str = Field(default="approvers", description='for @approval("required")')
    approval_escalation_groups: list[str] = Field(
        default_factory=list, description="groups asked next when policy names no @escalate_to"
    )
    approval_escalate_after: int | None = Field(default=None, ge=1, description="seconds; none: never")
    approval_timeout: int = Field(default=3600, ge=10, le=30 * 86400, description="unanswered → expired")
    access_grant_ttl: int = Field(default=900, ge=10, le=86400, description="default grant lifetime")
    access_grant_max_ttl: int = Field(default=3600, ge=10, le=86400, description="longest grant")
    ciba_poll_interval: int = Field(default=5, ge=1, le=60, description="CIBA polling interval")
    break_glass_max_ttl: int = Field(default=3600, ge=60, le=4 * 3600, description="longest break-glass")
    approval_webhook_urls: list[str] = Field(default_factory=list, description="Slack-style webhooks")
    access_callback_allow_private: bool = Field(
        default=False, description="let CIBA ping callbacks reach private addresses (labs, tests)"
    )
    # Continuous verification (docs/continuous-verification.md).
    detect_enabled: bool = Field(default=True, description="feed audit records to the risk engine")
    detect_queue_size: int = Field(default=10_000, ge=100, le=1_000_000)
    risk_learning_events: int = Field(default=50, ge=0, le=1_000_000)
    risk_learning_seconds: float = Field(default=86400.0, ge=0)
    risk_half_life: float = Field(default=900.0, gt=0, description="seconds for a reason's points to halve")
    risk_publish_delta: int = Field(default=5, ge=1, le=100)
    risk_snapshot_interval: float = Field(default=30.0, gt=0)
    risk_points: dict[str, float] = Field(
        default_factory=dict, description="detector → points, over the defaults"
    )
    risk_model_threshold: float = Field(default=0.85, gt=0, le=1)
    playbooks_file: Path | None = Field(
        default=None, description="playbook YAML applied at start; default HOME/playbooks.yaml if present"
    )
    alert_webhook_url: str | None = Field(default=None, description="playbook 'alert' posts here")
    owner_webhook_url: str | None = Field(default=None, description="playbook 'notify_owner' posts here")
    set_receivers: list[str] = Field(
        default_factory=list, description="RFC 8935 push endpoints for security event tokens"
    )
    webhook_timeout: float = Field(default=5.0, gt=0, le=60)

    max_request_bytes: int = Field(default=64 * 1024, ge=1024)
    max_bundle_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="policy bundle uploads")
    max_token_bytes: int = Field(default=8 * 1024, ge=512)

    # Federation (trusted issuers, RFC 7523 jwt-bearer): fetching their JWKS, and ephemeral identities.
    federation_jwks_timeout: float = Field(default=5.0, gt=0, le=60, description="seconds per fetch step")
    federation_jwks_max_bytes: int = Field(default=64 * 1024, ge=1024, le=4 * 1024 * 1024)
    federation_jwks_cache_seconds: float = Field(default=300.0, ge=1, le=86400)
    federation_jwks_refresh_interval: float = Field(
        default=30.0, ge=0, le=3600, description="at most one jwks refresh per issuer this often"
    )
    federation_identity_ttl: int = Field(
        default=3600, ge=60, le=30 * 86400, description="ephemeral identities expire this long after last use"
    )
    max_delegation_depth: int = Field(
        default=3, ge=1, le=10, description="actors a token exchange chain may hold (RFC 8693 act)"
    )
    require_registered_tasks: bool = Field(
        default=False, description="refuse agent_task authorization details naming no registered task"
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"issuer must be an http(s) url, got '{value}'")
        return value.rstrip("/") if value else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("TESSERA_CONFIG", "tessera.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))

    @property
    def issuer_url(self) -> str:
        return self.issuer or f"http://{self.host}:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer_url}/oauth2/token"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'tessera.db').resolve()}"

    @property
    def admin_token_path(self) -> Path:
        return self.home / "admin-token"

    @property
    def master_key_path(self) -> Path:
        return self.home / "master.key"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
