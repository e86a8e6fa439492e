"""Title search and summary at scale: on SQLite an FTS5 trigram index of case titles
(``cases_title_fts``, external content kept in step by triggers) when FTS5 is built in;
on both databases one index covering the summary's counts.

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
    # The summary's counts per status, severity and provider in one read of one index.
    op.create_index("ix_cases_status_severity_provider", "cases",
                    ["status", "severity", "provider"])  # fmt: skip
    bind = op.get_bind()
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
