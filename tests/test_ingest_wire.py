"""What one ingest request sends (issue 8): one INSERT, and nothing to Redis from the request.

Counted where it leaves the process (``tests/wire_support.py``): on Postgres one round trip
per delivery (an autocommit INSERT: no pool ping, no BEGIN, no COMMIT), on SQLite the INSERT
in its own short transaction; the wake-up goes to Redis from the web process's waker thread,
at most one flag per partition per ``INBOX_WAKE_DELAY_MS``, never from the request.
"""

from __future__ import annotations

import threading
import time

from app.extensions import db
from app.webhooks import ingest
from app.webhooks.models import Delivery
from tests.conftest import BOTH_DATABASES, fixture_payload
from tests.wire_support import Wire, summary

DELIVERIES = 6


@BOTH_DATABASES
def test_an_ingest_request_is_one_insert_and_no_redis_round_trip(app, github, monkeypatch):
    monkeypatch.setattr(ingest, "ENDPOINT_CACHE_SECONDS", 600)  # no lookup mid-test
    app.config["INBOX_WAKE_DELAY_MS"] = 200  # the waker sends after the requests
    edited = fixture_payload("issues.edited")
    with Wire() as wire:
        assert github.send_fixture("issues.opened").status_code == 202  # reads the endpoint
        # psycopg prepares a statement on its fifth run (one round trip more, once).
        for _ in range(5):
            assert github.send("issues", edited).status_code == 202
        time.sleep(0.4)  # the first wake-up is out
        before = len(wire.statements()), wire.round_trips(), len(wire.redis_commands)
        for _ in range(DELIVERIES):
            assert github.send("issues", edited).status_code == 202
        request_thread = threading.current_thread().name
        statements = wire.statements()[before[0] :]
        round_trips = wire.round_trips() - before[1]
        deadline = time.monotonic() + 5
        while len(wire.redis_commands) == before[2] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        sent = wire.redis_commands[before[2] :]
    from_requests = [command for thread, command in sent if thread == request_thread]
    woken = [command for _thread, command in sent]

    kinds = summary(statements)
    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    if postgres:
        assert kinds == {"INSERT INTO deliveries": DELIVERIES}, statements
        assert round_trips == DELIVERIES
    else:
        assert kinds == {"BEGIN": DELIVERIES, "INSERT INTO deliveries": DELIVERIES,
                         "COMMIT": DELIVERIES}, statements  # fmt: skip
    assert from_requests == [], "a request waited on Redis"
    # One issue, one partition: one SET NX of its flag for the six, which the first delivery's
    # wake-up set (no worker has taken the partition since), so no second job.
    assert woken == ["SET"], woken
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 2 * DELIVERIES
