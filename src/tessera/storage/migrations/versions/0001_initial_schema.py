"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_credentials",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("segment", sa.String(length=128), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("resource_uris", sa.JSON(), nullable=False),
        sa.Column("max_ttl", sa.Integer(), nullable=False),
        sa.Column("require_dpop", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index("ix_agents_owner", ["owner"], unique=False)

    op.create_table(
        "changes",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index("ix_changes_created", ["created_at"], unique=False)

    op.create_table(
        "issued_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=True),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("cnf_jkt", sa.String(length=64), nullable=True),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("jti"),
    )
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_issued_tokens_agent", ["agent_id", "expires_at"], unique=False)
        batch_op.create_index("ix_issued_tokens_expires", ["expires_at"], unique=False)
        batch_op.create_index("ix_issued_tokens_task", ["task_id", "expires_at"], unique=False)

    op.create_table(
        "server_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_jwk_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("activates_at", sa.Float(), nullable=False),
        sa.Column("deactivated_at", sa.Float(), nullable=True),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "used_jtis",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("used_jtis", schema=None) as batch_op:
        batch_op.create_index("ix_used_jtis_expires", ["expires_at"], unique=False)

    op.create_table(
        "agent_keys",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("jwk", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("removed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
        ),
        sa.PrimaryKeyConstraint("agent_id", "kid"),
    )


def downgrade() -> None:
    op.drop_table("agent_keys")
    with op.batch_alter_table("used_jtis", schema=None) as batch_op:
        batch_op.drop_index("ix_used_jtis_expires")

    op.drop_table("used_jtis")
    op.drop_table("signing_keys")
    op.drop_table("server_state")
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_issued_tokens_task")
        batch_op.drop_index("ix_issued_tokens_expires")
        batch_op.drop_index("ix_issued_tokens_agent")

    op.drop_table("issued_tokens")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index("ix_changes_created")

    op.drop_table("changes")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index("ix_agents_owner")

    op.drop_table("agents")
    op.drop_table("admin_credentials")
