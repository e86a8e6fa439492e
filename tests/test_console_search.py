"""Title search, the summary's counts and keyset pages at scale, guarded by results, query
counts and query plans (SQLite's ``EXPLAIN QUERY PLAN`` of the statements a request really
ran; Postgres's ``EXPLAIN`` with sequential scans priced out), never by timings.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app.cases import queries
from app.cases.models import Case
from app.cases.queries import CaseFilters, cases_after
from app.extensions import db
from app.inputs import InputError
from tests.conftest import BOTH_DATABASES, add_case
from tests.test_console_scale import plan, statements

POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
TITLES = (
    "Timeout on host-1",
    "disk TIMEOUTS again",
    "login fails",
    'quoted "x" title',
    "100%_done or not",
    "back\\slash",
    "time out (two words)",
    "Ho hum",
)


def _titled(app, titles=TITLES) -> None:
    with app.app_context():
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for n, title in enumerate(titles):
            add_case(title, "open", start + timedelta(minutes=n))
        db.session.commit()


def _found(client, q: str) -> set[str]:
    body = client.get("/api/cases", query_string={"q": q, "size": "100"}).get_json()
    return {case["title"] for case in body["cases"]}


@BOTH_DATABASES
@pytest.mark.parametrize(
    "q", ["timeout", "TIME", "out on", '"x"', "%_d", "\\s", "ho", "t", "time out", "nothing"]
)
def test_title_search_finds_substrings_ignoring_case(app, client, q):
    """The index answers as ``ILIKE '%q%'`` did: any substring, any case, any characters
    (quotes, LIKE wildcards, backslashes), and searches shorter than 3 characters too."""
    _titled(app)
    assert _found(client, q) == {t for t in TITLES if q.lower() in t.lower()}


def test_title_search_follows_title_changes(app, client):
    """SQLite's FTS5 table holds no text of its own: triggers keep it in step."""
    _titled(app, ["alpha timeout", "beta"])
    with app.app_context():
        case = db.session.scalar(db.select(Case).where(Case.title == "beta"))
        case.title = "gamma timeout"
        db.session.commit()
        db.session.execute(text("DELETE FROM cases WHERE title = 'alpha timeout'"))
        db.session.commit()
    assert _found(client, "timeout") == {"gamma timeout"}
    assert _found(client, "beta") == set()
    with app.app_context():
        # The index agrees with the table row for row ('integrity-check' raises otherwise).
        db.session.execute(
            text("INSERT INTO cases_title_fts(cases_title_fts, rank) VALUES ('integrity-check', 1)")
        )


def test_title_search_reads_the_fts_index(app, client):
    _titled(app)
    with statements(app) as ran:
        assert client.get("/cases?q=timeout").status_code == 200
        assert client.get("/api/cases?q=timeout").status_code == 200
    searches = [(sql, p) for sql, p in ran if "cases_title_fts" in sql]
    # The table's counts and page, the API's total and page: all through the index.
    assert len(searches) == 4
    for sql, parameters in searches:
        steps = plan(app, sql, parameters)
        assert "SCAN cases_title_fts VIRTUAL TABLE INDEX" in steps
        assert "SEARCH cases USING INTEGER PRIMARY KEY" in steps
        assert not re.search(r"SCAN cases\b(?! USING)", steps), steps
    with statements(app) as short:
        client.get("/cases?q=ti")
    assert not [sql for sql, _ in short if "cases_title_fts" in sql], "2 characters: LIKE"


def test_title_search_without_fts5_falls_back_to_like(app, client):
    """Where SQLite was built without FTS5 the migration makes no table; the search scans."""
    with app.app_context():
        for name in ("insert", "delete", "update"):
            db.session.execute(text(f"DROP TRIGGER cases_title_fts_{name}"))
        db.session.execute(text("DROP TABLE cases_title_fts"))
        db.session.commit()
    _titled(app)
    with statements(app) as ran:
        assert _found(client, "timeout") == {"Timeout on host-1", "disk TIMEOUTS again"}
    assert not [sql for sql, _ in ran if "cases_title_fts" in sql.split("sqlite_master")[-1]]


def _postgres_plan(sql: str, parameters) -> str:
    """Postgres's plan for ``sql`` with sequential scans priced out: an index that can
    answer it shows up (on a handful of rows the planner would rightly scan)."""
    connection = db.session.connection()
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = connection.exec_driver_sql(f"EXPLAIN {sql}", parameters).all()
    return "\n".join(row[0] for row in rows)


@POSTGRES_ONLY
def test_postgres_plans_use_the_indexes(app, client):
    """The title search (pg_trgm), the summary's counts (covering index) and the poll's O(1)
    version (ends of two indexes, no count) on Postgres."""
    _titled(app)
    with statements(app) as search:
        client.get("/api/cases?q=timeout")
    with statements(app) as summary:
        client.get("/api/cases/summary")
    with statements(app) as poll, app.app_context():
        queries.table_version()
    with app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM pg_extension WHERE extname='pg_trgm'"))
        for sql, parameters in search:
            if "ILIKE" in sql:
                assert "ix_cases_title_trgm" in _postgres_plan(sql, parameters)
        counts = [(s, p) for s, p in summary if "GROUP BY cases.status, cases.severity" in s]
        assert len(counts) == 1
        steps = _postgres_plan(*counts[0])
        assert "Index Only Scan using ix_cases_status_severity_provider" in steps
        assert len(poll) == 1, "the version is one statement (one round trip)"
        steps = _postgres_plan(*poll[0])
        assert steps.count("Index Only Scan Backward") == 2 and "Seq Scan" not in steps


def test_summary_counts_in_one_read_of_a_covering_index(app, client):
    _titled(app)
    with statements(app) as ran:
        body = client.get("/api/cases/summary").get_json()
    assert body["total"] == len(TITLES) and body["by_status"]["open"] == len(TITLES)
    assert body["by_severity"]["error"] == len(TITLES) and body["by_provider"] == {"github": 8}
    counted = [(sql, p) for sql, p in ran if "count(" in sql]
    assert len(counted) == 1, "status, severity and provider counts come from one statement"
    assert "SCAN cases USING COVERING INDEX ix_cases_status_severity_provider" in plan(
        app, *counted[0]
    )


def _varied_cases(app, count: int) -> None:
    """Cases with every sort key varied and tied (same times, severities, statuses)."""
    rng = random.Random(8)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        for n in range(count):
            moment = start + timedelta(minutes=rng.randint(0, 5))  # many ties
            case = add_case(f"case {n}", rng.choice(("open", "escalated", "resolved")), moment)
            case.severity = rng.choice(("critical", "error", "info"))
            case.updated_at = moment + timedelta(minutes=rng.randint(0, 3))
            if rng.random() < 0.3:
                case.acknowledged_at = moment
        db.session.commit()


@BOTH_DATABASES
@pytest.mark.parametrize("sort", list(queries.SORTS))
def test_keyset_pages_walk_the_same_order_as_offset_pages(app, sort):
    _varied_cases(app, 47)
    with app.app_context():
        offset_order, page = [], 1
        while batch := queries.search_cases(CaseFilters(sort=sort, page=page, size=25), 25)[0]:
            offset_order += [case.id for case in batch]
            page += 1
        keyset_order, cursor, pages = [], None, 0
        while True:
            batch, cursor = cases_after(CaseFilters(sort=sort), 10, cursor)
            keyset_order += [case.id for case in batch]
            pages += 1
            if cursor is None:
                break
        assert pages == 5  # 10 + 10 + 10 + 10 + 7: the last page says there is no next
        assert keyset_order == offset_order and len(set(keyset_order)) == 47
        # Filters apply as in the table.
        open_ids, cursor = [], None
        while True:
            batch, cursor = cases_after(CaseFilters(sort=sort, status="open"), 4, cursor)
            open_ids += [case.id for case in batch]
            if cursor is None:
                break
        assert open_ids == [i for i in offset_order if db.session.get(Case, i).status == "open"]


@pytest.mark.parametrize(
    "cursor",
    ["nonsense", "", "W10", "WyJ1cmdlbmN5IiwxLDIsIngiLDNd", "eyJhIjoxfQ", "WyJ1cGRhdGVkIiwxLDJd"],
)
def test_keyset_refuses_a_cursor_it_did_not_make(app, cursor):
    _varied_cases(app, 3)
    with app.app_context():
        if not cursor:  # empty: from the start
            assert len(cases_after(CaseFilters(), 2, cursor)[0]) == 2
            return
        with pytest.raises(InputError, match="cursor"):
            cases_after(CaseFilters(), 2, cursor)
        _, updated = cases_after(CaseFilters(sort="updated"), 1)
        with pytest.raises(InputError, match="another sort"):
            cases_after(CaseFilters(sort="created"), 2, updated)


def test_keyset_page_seeks_the_index_instead_of_counting_past_rows(app):
    _varied_cases(app, 12)
    with app.app_context():
        _, cursor = cases_after(CaseFilters(sort="updated"), 5)
    with statements(app) as ran, app.app_context():
        cases_after(CaseFilters(sort="updated"), 5, cursor)
    (sql, parameters), *_ = ran
    assert parameters[-1] == 0, "no rows skipped (SQLite's dialect writes OFFSET 0)"
    assert "SEARCH cases USING INDEX ix_cases_updated_at (updated_at<?)" in plan(
        app, sql, parameters
    )


@BOTH_DATABASES
def test_urgency_column_ranks_as_the_sort_says(app):
    """``cases.urgency``: live and unacknowledged, then live, then the rest; within each,
    critical → info, then any other severity."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    expected = {}
    with app.app_context():
        for status in ("open", "escalated", "parked", "resolved", "closed"):
            for acknowledged in (None, start):
                for rank, severity in enumerate(("critical", "error", "warning", "info", "odd")):
                    case = add_case(f"{status} {severity}", status, start)
                    case.severity, case.acknowledged_at = severity, acknowledged
                    live = status in ("open", "escalated", "parked")
                    expected[case.id] = (0 if acknowledged is None else 10) if live else 20
                    expected[case.id] += rank
        db.session.commit()
        got = dict(db.session.execute(db.select(Case.id, Case.urgency)).all())
    assert got == expected


def test_first_page_reads_the_urgency_index_in_order(app, client):
    """The default sort takes its rows from the start of ``ix_cases_urgency``: no sort of
    every case (the plans of the table's and the API's page statements)."""
    _varied_cases(app, 5)
    with statements(app) as ran:
        assert client.get("/cases").status_code == 200
        assert client.get("/api/cases").status_code == 200
    pages = [(sql, p) for sql, p in ran if "ORDER BY cases.urgency" in sql]
    assert len(pages) == 2
    for sql, parameters in pages:
        steps = plan(app, sql, parameters)
        assert "USING INDEX ix_cases_urgency" in steps and "TEMP B-TREE" not in steps, steps


def test_model_and_migration_compute_the_same_urgency():
    """The model's ``Computed`` text (used by ``create_all``) is the migration's, frozen."""
    import importlib.util
    from pathlib import Path

    from app.cases.models import URGENCY_SQL

    versions = Path(__file__).parents[1] / "migrations" / "versions"
    (path,) = [p for p in versions.glob("*.py") if "\nURGENCY = (" in p.read_text()]
    spec = importlib.util.spec_from_file_location("migration_0022", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.URGENCY == URGENCY_SQL


def _page_statement(ran) -> tuple[str, object]:
    pages = [(sql, p) for sql, p in ran if "ORDER BY cases.urgency" in sql]
    assert len(pages) == 1, pages
    return pages[0]


def test_broad_search_reads_its_page_in_sort_order(app, client, monkeypatch):
    """SQLite: a search matching at least ``BROAD_SEARCH`` cases walks ``ix_cases_urgency``
    and checks each case against the matches (a page of 25 reads ~125 entries when a fifth
    of the titles match), a narrower one fetches its matches by id and sorts them; the same
    cases either way."""
    _varied_cases(app, 12)
    with app.app_context():
        for n, case in enumerate(db.session.scalars(db.select(Case).order_by(Case.id))):
            case.title = f"timeout {n}" if n % 3 else f"disk {n}"
        db.session.commit()
    monkeypatch.setattr(queries, "BROAD_SEARCH", 10_000)
    with statements(app) as narrow:
        by_id = client.get("/api/cases?q=timeout&size=25").get_json()["cases"]
    monkeypatch.setattr(queries, "BROAD_SEARCH", 5)
    with statements(app) as broad:
        in_order = client.get("/api/cases?q=timeout&size=25").get_json()["cases"]
    assert len(by_id) == 8 and by_id == in_order
    steps = plan(app, *_page_statement(broad))
    assert "SCAN cases USING INDEX ix_cases_urgency" in steps and "TEMP B-TREE" not in steps
    steps = plan(app, *_page_statement(narrow))
    assert "USING INTEGER PRIMARY KEY" in steps, steps
    # A sort with no index to walk keeps reading the matches by id.
    with statements(app) as created:
        client.get("/api/cases?q=timeout&sort=created")
    pages = [(sql, p) for sql, p in created if "ORDER BY cases.created_at DESC" in sql]
    assert "USING INTEGER PRIMARY KEY" in plan(app, *pages[0])


@POSTGRES_ONLY
def test_postgres_reads_deliveries_by_their_indexes(app, client, github, drain):
    """Postgres: the case page's deliveries come from ``ix_deliveries_case_received`` (and
    the events' delivery ids), never a scan of every delivery, which an ``OR`` of the two
    made it do; the deliveries log reads ``ix_deliveries_endpoint_received`` in order."""
    github.send_fixture("issues.opened")
    github.send_fixture("issues.edited")
    assert drain() == 0
    with statements(app) as ran:
        assert client.get("/cases/1").status_code == 200
        assert client.get(f"/endpoints/{github.endpoint_id}/deliveries").status_code == 200
    with app.app_context():
        by_case = [(s, p) for s, p in ran if "WHERE deliveries.case_id =" in s]
        assert len(by_case) == 1, by_case
        steps = _postgres_plan(*by_case[0])
        assert "ix_deliveries_case_received" in steps, steps
        assert "Seq Scan on deliveries" not in steps, steps
        log = [(s, p) for s, p in ran
               if re.search(r"WHERE deliveries.endpoint_id = \S+\s+ORDER BY", s)]  # fmt: skip
        assert len(log) == 1, log
        steps = _postgres_plan(*log[0])
        assert "ix_deliveries_endpoint_received" in steps and "Sort" not in steps, steps
