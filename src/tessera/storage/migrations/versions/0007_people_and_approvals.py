"""people (accounts, personal tokens) and just-in-time access (requests, approval votes, grants)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("disabled_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "person_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_person_tokens_person", "person_tokens", ["person_id"], unique=False)
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("auth_req_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("asked", sa.JSON(), nullable=False),
        sa.Column("asked_hash", sa.String(length=64), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("group_index", sa.Integer(), nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("separation", sa.String(length=32), nullable=True),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("poll_interval", sa.Integer(), nullable=False),
        sa.Column("risk", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=True),
        sa.Column("policies", sa.JSON(), nullable=False),
        sa.Column("callback_token", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("escalate_after", sa.Integer(), nullable=True),
        sa.Column("escalate_at", sa.Float(), nullable=True),
        sa.Column("last_polled_at", sa.Float(), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("auth_req_hash"),
    )
    op.create_index("ix_access_requests_status", "access_requests", ["status", "expires_at"], unique=False)
    op.create_index("ix_access_requests_agent", "access_requests", ["agent_id", "created_at"], unique=False)
    op.create_table(
        "approval_votes",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["access_requests.id"]),
        sa.PrimaryKeyConstraint("request_id", "person_id"),
    )
    op.create_table(
        "access_grants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("asked", sa.JSON(), nullable=False),
        sa.Column("asked_hash", sa.String(length=64), nullable=False),
        sa.Column("granted_by", sa.String(length=320), nullable=False),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("jtis", sa.JSON(), nullable=False),
        sa.Column("reviewed_at", sa.Float(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=320), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_access_grants_kind", "access_grants", ["kind", "expires_at"], unique=False)
    op.create_index("ix_access_grants_agent", "access_grants", ["agent_id", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("access_grants")
    op.drop_table("approval_votes")
    op.drop_table("access_requests")
    op.drop_table("person_tokens")
    op.drop_table("people")
