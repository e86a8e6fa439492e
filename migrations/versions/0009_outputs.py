"""outputs: resolution outputs (ticket notes, KB article, client summary)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "resolution_outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("generated_content", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("writer", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('ticket_notes', 'kb_article', 'client_summary')",
            name=op.f("ck_resolution_outputs_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'approved', 'rejected')",
            name=op.f("ck_resolution_outputs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_resolution_outputs_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["approved_by_id"],
            ["users.id"],
            name=op.f("fk_resolution_outputs_approved_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resolution_outputs")),
        sa.UniqueConstraint("case_id", "kind", name="uq_resolution_outputs_case_kind"),
    )
    with op.batch_alter_table("resolution_outputs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resolution_outputs_case_id"), ["case_id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("resolution_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resolution_outputs_case_id"))
    op.drop_table("resolution_outputs")
