"""cases.acknowledged_at/_by: who acknowledged a case and when (triggered → acknowledged)

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(320), nullable=True))


def downgrade():
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")
