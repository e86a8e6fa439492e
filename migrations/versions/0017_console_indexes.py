"""Indexes for the console at scale: deliveries by case and by endpoint log order; cases
by severity, provider, and status with creation time; on Postgres a trigram index for the
title search when pg_trgm is available.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    # The case page's deliveries (and nothing else) read deliveries by case: without this
    # index SQLite reads every delivery body in the file.
    op.create_index("ix_deliveries_case_received", "deliveries", ["case_id", "received_at"])
    # The deliveries log: one endpoint's rows newest first, a page at a time.
    op.create_index(
        "ix_deliveries_endpoint_received", "deliveries", ["endpoint_id", "received_at", "id"]
    )
    # The summary's counts per severity and provider, the provider filter's choices, and the
    # oldest live case (one look-up per live status).
    op.create_index("ix_cases_severity", "cases", ["severity"])
    op.create_index("ix_cases_provider", "cases", ["provider"])
    op.create_index("ix_cases_status_created", "cases", ["status", "created_at"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # ``title ILIKE '%…%'`` can use a trigram index; the extension may not be installable
        # (no contrib package, no privilege): then the search scans, as before.
        try:
            with bind.begin_nested():
                bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except sa.exc.DBAPIError:
            return
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_cases_title_trgm ON cases "
            "USING gin (title gin_trgm_ops)"
        )


def downgrade():
    op.execute("DROP INDEX IF EXISTS ix_cases_title_trgm")
    op.drop_index("ix_cases_status_created", table_name="cases")
    op.drop_index("ix_cases_provider", table_name="cases")
    op.drop_index("ix_cases_severity", table_name="cases")
    op.drop_index("ix_deliveries_endpoint_received", table_name="deliveries")
    op.drop_index("ix_deliveries_case_received", table_name="deliveries")
