"""endpoints: callback token (hashed) for POST /api/cases/<id>/callback

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        # Only the SHA-256 of the token is stored; `flask endpoints callback-token` prints it.
        batch_op.add_column(sa.Column("callback_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("callback_token_created_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("callback_token_created_at")
        batch_op.drop_column("callback_token_hash")
