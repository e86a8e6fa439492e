"""Ingest's hot path: coalesced wake-ups sent by a thread, and the Postgres INSERT that runs
without a ping and survives a dead pooled connection."""

from __future__ import annotations

import time

from sqlalchemy import text

from app.extensions import db
from app.tasks.queue import get_queue
from app.webhooks import ingest
from app.webhooks.models import Delivery
from tests.conftest import BOTH_DATABASES, fixture_payload


def _queued(app) -> int:
    with app.app_context():
        return get_queue().count


def test_wake_ups_are_sent_by_a_thread_and_coalesced(app, github, drain):
    app.config["INBOX_WAKE_DELAY_MS"] = 300
    edited = fixture_payload("issues.edited")
    started = time.monotonic()
    assert github.send_fixture("issues.opened").status_code == 202
    assert github.send("issues", edited).status_code == 202
    assert github.send("issues", edited).status_code == 202
    answered = time.monotonic() - started
    if answered < 0.25:  # on a busy machine the thread may have gone already
        assert _queued(app) == 0, "no request waits on Redis"
    deadline = time.monotonic() + 5
    while _queued(app) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.4)
    assert _queued(app) == 1, "three deliveries of one issue: one wake-up"
    assert drain() == 0
    with app.app_context():
        statuses = db.session.scalars(db.select(Delivery.status)).all()
    assert statuses == ["processed"] * 3


@BOTH_DATABASES
def test_insert_survives_a_dead_pooled_connection(app, github, drain):
    assert github.send_fixture("issues.opened").status_code == 202
    with app.app_context():
        engine = ingest._hot_engine()
        if engine.dialect.name == "postgresql":
            assert engine is not db.engine
            assert engine.pool._pre_ping is False
            # Kill the hot engine's pooled connections from the server side.
            with db.engine.connect() as admin:
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND state = 'idle'"
                    )
                )
            time.sleep(0.2)
    assert github.send("issues", fixture_payload("issues.edited")).status_code == 202
    assert drain() == 0
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 2
