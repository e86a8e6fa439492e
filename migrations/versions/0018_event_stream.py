"""case events: seq, Lamport clock, node id, correlation id; event_node; sync_state

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op
from ulid import ULID

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("lamport", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("node_id", sa.String(length=26), nullable=True))
        batch_op.add_column(sa.Column("correlation_id", sa.String(length=64), nullable=True))
    op.create_table(
        "event_node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=26), nullable=False),
        sa.Column("clock", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_node")),
    )
    op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cursor_seq", sa.BigInteger(), nullable=False),
        sa.Column("cursor_event_id", sa.String(length=26), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auth_blocked", sa.String(length=64), nullable=True),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_state")),
    )
    # The events so far get their positions in the order they were written, and this
    # installation its node id.
    node_id = str(ULID())
    op.execute(
        "UPDATE case_events SET seq = (SELECT r.n FROM (SELECT id, ROW_NUMBER() OVER"
        " (ORDER BY created_at, id) AS n FROM case_events) r WHERE r.id = case_events.id)"
    )
    op.execute(
        sa.text(
            "UPDATE case_events SET lamport = seq, node_id = :node,"
            " correlation_id = COALESCE(causation_id, id)"
        ).bindparams(node=node_id)
    )
    op.execute(
        sa.text(
            "INSERT INTO event_node (id, node_id, clock, seq, refused) SELECT 1, :node,"
            " COALESCE(MAX(seq), 0), COALESCE(MAX(seq), 0), 0 FROM case_events"
        ).bindparams(node=node_id)
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_seq"), ["seq"], unique=True)


def downgrade():
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_events_seq"))
        batch_op.drop_column("correlation_id")
        batch_op.drop_column("node_id")
        batch_op.drop_column("lamport")
        batch_op.drop_column("seq")
    op.drop_table("sync_state")
    op.drop_table("event_node")
