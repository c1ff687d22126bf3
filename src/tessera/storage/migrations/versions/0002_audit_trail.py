"""audit trail

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_records",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("task_id", sa.String(length=128), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_subject", ["subject", "ts_ms"], unique=False)
        batch_op.create_index("ix_audit_task", ["task_id"], unique=False)
        batch_op.create_index("ix_audit_token", ["token_hash"], unique=False)
        batch_op.create_index("ix_audit_ts", ["ts_ms"], unique=False)
        batch_op.create_index("ix_audit_type", ["type", "ts_ms"], unique=False)

    # The chain starts from the all-zero genesis hash (see tessera.audit.chain).
    head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer),
        sa.column("seq", sa.BigInteger),
        sa.column("hash", sa.String),
        sa.column("anchor_seq", sa.BigInteger),
        sa.column("anchor_hash", sa.String),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64, "anchor_seq": 0, "anchor_hash": "0" * 64}])


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_type")
        batch_op.drop_index("ix_audit_ts")
        batch_op.drop_index("ix_audit_token")
        batch_op.drop_index("ix_audit_task")
        batch_op.drop_index("ix_audit_subject")

    op.drop_table("audit_records")
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
