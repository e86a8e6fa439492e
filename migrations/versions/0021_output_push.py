"""resolution outputs: status pushed, with where and when

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("resolution_outputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pushed_to", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("status", type_="check")
        batch_op.create_check_constraint(
            "status", "status IN ('draft', 'approved', 'rejected', 'pushed')"
        )


def downgrade():
    op.execute("UPDATE resolution_outputs SET status = 'approved' WHERE status = 'pushed'")
    with op.batch_alter_table("resolution_outputs", schema=None) as batch_op:
        batch_op.drop_constraint("status", type_="check")
        batch_op.create_check_constraint("status", "status IN ('draft', 'approved', 'rejected')")
        batch_op.drop_column("pushed_at")
        batch_op.drop_column("pushed_to")
