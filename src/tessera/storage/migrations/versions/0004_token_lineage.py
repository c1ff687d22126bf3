"""token lineage: original subject and parent token of every issued token

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("parent_jti", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_issued_tokens_subject", ["subject", "expires_at"], unique=False)
        batch_op.create_index("ix_issued_tokens_parent", ["parent_jti"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_issued_tokens_parent")
        batch_op.drop_index("ix_issued_tokens_subject")
        batch_op.drop_column("parent_jti")
        batch_op.drop_column("subject")
