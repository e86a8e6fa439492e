"""What one ingest request sends (issue 8): one INSERT, and nothing to Redis from the request.

Counted where it leaves the process (``tests/wire_support.py``): on Postgres one round trip
per delivery (an autocommit INSERT: no pool ping, no BEGIN, no COMMIT), on SQLite the INSERT
in its own short transaction; the wake-up goes to Redis from the web process's waker thread,
at most one flag per partition per ``INBOX_WAKE_DELAY_MS``, never from the request.
"""

from __future__ import annotations

import json
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


def test_concurrent_deliveries_share_a_commit_on_sqlite_and_each_gets_its_answer(
    app, github, monkeypatch
):
    """Eight threads post at once (one of them an id posted just before, one with a
    signature that fails) while the first transaction is held up: the rest queue and go
    into the next transaction together; each answer is its own."""
    monkeypatch.setattr(ingest, "ENDPOINT_CACHE_SECONDS", 600)
    assert github.send_fixture("issues.opened", delivery_id="seen").status_code == 202
    write = ingest._GroupCommit._write
    sizes: list[int] = []

    def slow_write(self, engine, hot, batch):
        sizes.append(len(batch))
        if len(sizes) == 1:
            time.sleep(0.5)  # the others arrive meanwhile
        return write(self, engine, hot, batch)

    monkeypatch.setattr(ingest._GroupCommit, "_write", slow_write)
    body = json.dumps(fixture_payload("issues.edited")).encode()
    ids = ["first", *(f"d{n}" for n in range(5)), "seen", "forged"]
    answers: dict[str, int] = {}

    def post(delivery_id: str) -> None:
        headers = github.headers("issues", body, delivery_id)
        if delivery_id == "forged":
            headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        answers[delivery_id] = app.test_client().post(github.path, data=body,
                                                       headers=headers).status_code  # fmt: skip

    with Wire() as wire:
        first = threading.Thread(target=post, args=("first",))
        first.start()
        time.sleep(0.2)  # "first" leads and is held up
        others = [threading.Thread(target=post, args=(i,)) for i in ids[1:]]
        for thread in others:
            thread.start()
        for thread in [first, *others]:
            thread.join(10)
    assert answers == {**dict.fromkeys(ids[:-2], 202), "seen": 200, "forged": 401}
    assert sizes == [1, 6], "the six that came meanwhile share one transaction"
    assert summary(wire.statements())["COMMIT"] == 2 + 1  # + the refused one's (ORM)
    with app.app_context():
        stored = db.session.scalars(db.select(Delivery.delivery_id)).all()
    assert sorted(filter(None, stored)) == sorted(ids[:-1])
