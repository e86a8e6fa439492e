"""Case table, title search and summary at scale: ``cases.urgency`` (a generated column:
the urgency sort's rank) with an index in that sort's order; on SQLite an FTS5 trigram index
of case titles (``cases_title_fts``, external content kept in step by triggers) when FTS5
is built in; one index covering the summary's counts.

Postgres already has ``ix_cases_title_trgm`` (0017) when pg_trgm could be created.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

#: Live (open, escalated, parked) and unacknowledged 0, live 10, else 20; plus critical 0,
#: error 1, warning 2, info 3, anything else 4. Frozen here; the model's ``URGENCY_SQL``
#: must compute the same.
URGENCY = (
    "CASE WHEN status IN ('open', 'escalated', 'parked') "
    "THEN CASE WHEN acknowledged_at IS NULL THEN 0 ELSE 10 END ELSE 20 END + "
    "CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2 "
    "WHEN 'info' THEN 3 ELSE 4 END"
)
FTS = "cases_title_fts"
TRIGGERS = {
    # An external-content table stores no text: a delete must name the old title.
    f"{FTS}_insert": f"""AFTER INSERT ON cases BEGIN
        INSERT INTO {FTS}(rowid, title) VALUES (new.id, new.title); END""",
    f"{FTS}_delete": f"""AFTER DELETE ON cases BEGIN
        INSERT INTO {FTS}({FTS}, rowid, title) VALUES ('delete', old.id, old.title); END""",
    f"{FTS}_update": f"""AFTER UPDATE OF title ON cases BEGIN
        INSERT INTO {FTS}({FTS}, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO {FTS}(rowid, title) VALUES (new.id, new.title); END""",
}


def upgrade():
    bind = op.get_bind()
    # The default sort reads the first rows of an index instead of sorting every case.
    # SQLite can only add a VIRTUAL generated column (computed on read; the index keeps it).
    kind = "STORED" if bind.dialect.name == "postgresql" else "VIRTUAL"
    op.execute(
        f"ALTER TABLE cases ADD COLUMN urgency SMALLINT GENERATED ALWAYS AS ({URGENCY}) {kind}"
    )
    op.create_index("ix_cases_urgency", "cases", ["urgency", "created_at", sa.text("id DESC")])
    # The summary's counts per status, severity and provider in one read of one index.
    op.create_index("ix_cases_status_severity_provider", "cases",
                    ["status", "severity", "provider"])  # fmt: skip
    if bind.dialect.name != "sqlite":
        return
    try:
        with bind.begin_nested():
            # trigram: any substring of 3+ characters matches, case-insensitively, as the
            # ``LIKE '%…%'`` it replaces (shorter searches still use LIKE).
            bind.execute(sa.text(
                f"CREATE VIRTUAL TABLE {FTS} USING fts5("
                "title, content='cases', content_rowid='id', tokenize='trigram')"
            ))  # fmt: skip
    except sa.exc.OperationalError:
        return  # no FTS5 (or no trigram tokenizer, SQLite < 3.34): the search scans
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    op.drop_index("ix_cases_status_severity_provider", table_name="cases")
    op.drop_index("ix_cases_urgency", table_name="cases")
    op.execute("ALTER TABLE cases DROP COLUMN urgency")
