"""continuous verification: risk scores, response state, kill rules, playbooks, SET receivers

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_risk",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("learning", sa.Boolean(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id"),
    )
    op.create_table(
        "agent_responses",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("approvals_remaining", sa.Integer(), nullable=False),
        sa.Column("ttl_cap", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id"),
    )
    op.create_table(
        "kill_rules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.Column("released_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kill_rules_active", "kill_rules", ["released_at", "scope", "target"], unique=False)
    op.create_table(
        "playbooks",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "playbook_firings",
        sa.Column("playbook", sa.String(length=100), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("playbook", "agent_id"),
    )
    op.create_table(
        "set_receivers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("set_receivers")
    op.drop_table("playbook_firings")
    op.drop_table("playbooks")
    op.drop_index("ix_kill_rules_active", table_name="kill_rules")
    op.drop_table("kill_rules")
    op.drop_table("agent_responses")
    op.drop_table("agent_risk")
