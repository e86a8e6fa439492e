"""The console at scale, guarded by query counts and query plans rather than timings.

Pages must cost the same number of statements whatever the number of rows they show (no
N+1), the poll's version must not count the cases, and the queries that read deliveries by
case, by endpoint log order and the oldest live case must use their indexes (SQLite's
``EXPLAIN QUERY PLAN`` on the statements the request really ran; on Postgres the indexes
must exist).
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text

from app.cases.models import Case
from app.extensions import db
from tests.conftest import BOTH_DATABASES, add_case, fixture_payload


@contextlib.contextmanager
def statements(app):
    """Collect ``(sql, parameters)`` of every statement run on the app's engine."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan(app, statement: str, parameters) -> str:
    """SQLite's query plan for ``statement``, one line per step."""
    with app.app_context():
        rows = db.session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters
        )
        return "\n".join(str(row[-1]) for row in rows)


def _cases_assigned(app, make_user, count: int) -> None:
    users = [make_user("engineer") for _ in range(count)]
    with app.app_context():
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for n, user_id in enumerate(users):
            case = add_case(f"case {n}", "open", start + timedelta(minutes=n))
            case.assignee_id = user_id
        db.session.commit()


@BOTH_DATABASES
def test_case_table_statements_do_not_grow_with_assignees(app, client, make_user):
    _cases_assigned(app, make_user, 3)
    with statements(app) as few:
        assert client.get("/cases").status_code == 200
    _cases_assigned(app, make_user, 12)
    with statements(app) as many:
        page = client.get("/cases").get_data(as_text=True)
    assert page.count("@example.com") >= 15
    assert len(many) == len(few)
    with statements(app) as api:
        assert len(client.get("/api/cases").get_json()["cases"]) == 15
    assert len(api) <= len(few)


def _case_with_updates(github, drain, updates: int) -> int:
    github.send_fixture("issues.opened")
    edited = fixture_payload("issues.edited")
    for _ in range(updates):
        github.send("issues", edited)
    assert drain() == 0
    return 1


@BOTH_DATABASES
def test_case_page_statements_do_not_grow_with_events(app, client, github, drain):
    case_id = _case_with_updates(github, drain, 1)
    with statements(app) as few:
        assert client.get(f"/cases/{case_id}").status_code == 200
    _case_with_updates(github, drain, 8)
    with app.app_context():
        assert len(db.session.get(Case, case_id).events) >= 10
    with statements(app) as many:
        assert client.get(f"/cases/{case_id}").status_code == 200
    assert len(many) == len(few)
    # One body, however many deliveries: the one that opened the case (what happened).
    bodies = [sql for sql, _ in many if "deliveries.body" in sql]
    assert len(bodies) == 1, bodies


@BOTH_DATABASES
def test_poll_version_does_not_count_cases(app, client, make_user):
    _cases_assigned(app, make_user, 3)
    fragment = client.get("/cases", headers={"HX-Request": "true"}).get_data(as_text=True)
    version = re.search(r'"since": "([^"]+)"', fragment).group(1)
    with statements(app) as poll:
        answer = client.get(f"/cases?since={version}", headers={"HX-Request": "true"})
    assert answer.status_code == 204
    case_reads = [sql for sql, _ in poll if "FROM cases" in sql]
    assert case_reads and not [sql for sql in case_reads if "count(" in sql.lower()]
    if db_is_sqlite(app):
        for sql, parameters in poll:
            if "FROM cases" in sql:
                assert re.search(r"SCAN cases$|SCAN cases\n", plan(app, sql, parameters)) is None


def db_is_sqlite(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")


def test_indexed_reads_use_their_indexes(app, client, github, drain):
    """SQLite: the plans of the statements the pages really run name the new indexes."""
    case_id = _case_with_updates(github, drain, 2)
    with app.app_context():
        endpoint_id = db.session.get(Case, case_id).endpoint_id
    with statements(app) as ran:
        assert client.get(f"/cases/{case_id}").status_code == 200
        assert client.get(f"/endpoints/{endpoint_id}/deliveries").status_code == 200
        assert client.get("/api/cases/summary").status_code == 200
    plans = {sql: plan(app, sql, parameters) for sql, parameters in ran}

    def plan_of(pattern: str) -> str:
        found = [p for sql, p in plans.items() if re.search(pattern, sql, re.S)]
        assert found, f"no statement matches {pattern}"
        return "\n".join(found)

    assert "ix_deliveries_case_received" in plan_of(r"FROM deliveries\s+WHERE deliveries.case_id")
    assert "ix_deliveries_endpoint_received" in plan_of(
        r"FROM deliveries\s+WHERE deliveries.endpoint_id = \?\s+ORDER BY"
    )
    assert "ix_cases_status_created" in plan_of(r"min\(cases.created_at\)")


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # fmt: skip
def test_postgres_has_the_indexes(app):
    with app.app_context():
        names = set(db.session.scalars(text("SELECT indexname FROM pg_indexes")))
        trigram = db.session.scalar(
            text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
        )
    assert {
        "ix_deliveries_case_received",
        "ix_deliveries_endpoint_received",
        "ix_cases_severity",
        "ix_cases_provider",
        "ix_cases_status_created",
    } <= names
    assert ("ix_cases_title_trgm" in names) == bool(trigram)


def _issues(github, drain, numbers: range) -> None:
    """One GitHub issue (a case, with its delivery) per number, titled "timeout <n>"."""
    payload = fixture_payload("issues.opened")
    for n in numbers:
        payload["issue"].update(number=n, id=1000 + n, title=f"timeout {n}")
        github.send("issues", payload)
    assert drain() == 0


def _statements_per_page(app, client, endpoint_id: str) -> dict[str, int]:
    fragment = client.get("/cases", headers={"HX-Request": "true"}).get_data(as_text=True)
    version = re.search(r'"since": "([^"]+)"', fragment).group(1)
    pages = {
        "/cases": {},
        "/cases?q=timeout": {},
        f"/cases?since={version}": {"HX-Request": "true"},
        "/cases/1": {},
        f"/endpoints/{endpoint_id}/deliveries": {},
        "/api/cases": {},
        "/api/cases?q=timeout": {},
        "/api/cases/summary": {},
    }
    counts = {}
    for url, headers in pages.items():
        with statements(app) as ran:
            status = client.get(url, headers=headers).status_code
        assert status == (204 if "since" in url else 200), url
        # Not counted: the FTS table's existence, looked up once per database connection.
        ran = [sql for sql, _ in ran if "sqlite_master" not in sql]
        counts[url.split("?since")[0] + (" (poll)" if "since" in url else "")] = len(ran)
    return counts


@BOTH_DATABASES
def test_statements_per_page_do_not_grow_with_cases(app, client, github, drain):
    """Every console page and API read costs the same number of statements with 3 cases as
    with 15 (no N+1, nothing per row), and the poll's "nothing changed" is the session's
    user and the O(1) table version: two statements at most."""
    _issues(github, drain, range(1, 4))
    few = _statements_per_page(app, client, github.endpoint_id)
    _issues(github, drain, range(4, 16))
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Case.id))) == 15
    many = _statements_per_page(app, client, github.endpoint_id)
    assert many == few
    assert few["/cases (poll)"] <= 2, few
