"""The event stream: Lamport clocks across processes, paging with no missed events,
correlation and causation ids, and the published schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.cases.models import Case
from app.events import clock as node_clock
from app.events.models import CaseEvent, EventNode
from app.extensions import db
from tests.conftest import BOTH_DATABASES, add_case

WRITER = Path(__file__).with_name("events_writer.py")
ROOT = Path(__file__).resolve().parents[1]


def start_writer(app, case_id: int, name: str, count: int, per: int = 1, hold: float = 0.0):
    config = app.config
    return subprocess.Popen(
        [
            sys.executable,
            str(WRITER),
            config["SQLALCHEMY_DATABASE_URI"],
            config["REDIS_URL"],
            str(case_id),
            name,
            str(count),
            str(per),
            str(hold),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def finish(process) -> list[str]:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])["ids"]


def make_case(app) -> int:
    from datetime import UTC, datetime

    with app.app_context():
        case = add_case("stream", "open", datetime.now(UTC))
        db.session.commit()
        return case.id


@BOTH_DATABASES
def test_clocks_from_two_workers_and_the_web_never_collide(app, client):
    case_id = make_case(app)
    workers = [start_writer(app, case_id, f"worker{n}", 30) for n in (1, 2)]
    web_ids = []
    for n in range(30):  # the web process meanwhile: real requests through the API
        severity = ("critical", "info")[n % 2]
        response = client.post(f"/api/cases/{case_id}/handle",
                               json={"action": "severity", "severity": severity})  # fmt: skip
        assert response.status_code == 200, response.get_json()
        web_ids.extend(event["id"] for event in response.get_json()["events"])
    written = {"web": web_ids, **{f"w{n}": finish(p) for n, p in enumerate(workers)}}

    with app.app_context():
        events = db.session.scalars(db.select(CaseEvent).order_by(CaseEvent.seq)).all()
        node = db.session.get(EventNode, 1)
        lamports = [event.lamport for event in events]
        assert len(events) == 90, [(e.actor, e.seq, e.lamport) for e in events]
        assert len(set(lamports)) == 90 and len({e.seq for e in events}) == 90
        assert lamports == sorted(lamports)  # one node: its clock only moves forward
        assert {event.node_id for event in events} == {node.node_id}
        assert node.clock == max(lamports) and node.seq == max(e.seq for e in events)
        by_id = {event.id: event.lamport for event in events}
        for ids in written.values():  # each process saw its own clock grow
            own = [by_id[i] for i in ids]
            assert own == sorted(own) and len(own) == 30


@BOTH_DATABASES
def test_a_reader_following_next_after_sees_every_event_exactly_once(app, client):
    case_id = make_case(app)
    writers = [start_writer(app, case_id, f"w{n}", 25, per=1 + n % 3, hold=0.04)
               for n in range(4)]  # fmt: skip
    seen: list[str] = []
    after = None

    def read() -> int:
        nonlocal after
        query = f"/api/events?limit=7{'&after=' + after if after else ''}"
        body = client.get(query).get_json()
        seen.extend(event["id"] for event in body["events"])
        after = body["next_after"] or after
        return len(body["events"])

    while any(w.poll() is None for w in writers):
        read()
        time.sleep(0.01)
    while read():
        pass
    written = [i for w in writers for i in finish(w)]
    assert len(written) == 100
    assert len(seen) == len(set(seen)), "an event was read twice"
    assert sorted(seen) == sorted(written), f"missed {len(set(written) - set(seen))} events"


def test_paging_filters_by_type_and_case(app, client):
    case_a, case_b = make_case(app), make_case(app)
    for case_id, action in ((case_a, "tag"), (case_b, "tag"), (case_a, "severity")):
        body = {"action": action, "tags": ["x"], "severity": "critical"}
        assert client.post(f"/api/cases/{case_id}/handle", json=body).status_code == 200
    everything = client.get("/api/events").get_json()
    assert [e["type"] for e in everything["events"]] == [
        "case.tagged", "case.tagged", "case.severity_changed"
    ]  # fmt: skip
    assert everything["next_after"] == everything["events"][-1]["id"]
    only_a = client.get(f"/api/events?case_id={case_a}").get_json()["events"]
    assert {e["case_id"] for e in only_a} == {case_a} and len(only_a) == 2
    tagged = client.get("/api/events?type=case.tag*").get_json()["events"]
    assert [e["type"] for e in tagged] == ["case.tagged", "case.tagged"]
    first = everything["events"][0]["id"]
    rest = client.get(f"/api/events?after={first}&limit=1").get_json()
    assert [e["id"] for e in rest["events"]] == [everything["events"][1]["id"]]
    end = client.get(f"/api/events?after={everything['next_after']}").get_json()
    assert end == {"events": [], "next_after": None}
    assert client.get("/api/events?after=nope").status_code == 400
    assert client.get("/api/events?limit=1001").status_code == 400
    assert client.get("/api/events?limit=0").status_code == 400


def test_events_and_schemas_need_a_signed_in_viewer(app, anonymous_client, viewer_client):
    assert anonymous_client.get("/api/events").status_code == 401
    assert viewer_client.get("/api/events").status_code == 200
    schemas = viewer_client.get("/api/events/schemas").get_json()["schemas"]
    assert "case.opened" in schemas
    assert schemas["case.opened"]["properties"]["type"] == {"const": "case.opened"}


def test_one_request_shares_one_correlation_and_tasks_carry_it(app, client):
    """A request's events share its id; a task it creates carries it to the events the
    task writes, with the task as their cause."""
    from app.events.context import caused_by
    from app.events.record import record_event
    from app.tasks import create_task

    case_id = make_case(app)
    body = {"action": "close", "reason": "manual", "note": "done"}
    events = client.post(f"/api/cases/{case_id}/handle", json=body).get_json()["events"]
    assert events and events[0]["correlation_id"] == events[0]["causation_id"]
    with app.app_context():
        with caused_by("delivery-1"):
            task = create_task("sync.batch", "sync")
        assert task.payload["correlation_id"] == "delivery-1"
        case = db.session.get(Case, case_id)
        with caused_by(task.id, task.payload["correlation_id"]):
            event = record_event(case, "case.tagged",
                                 payload={"tags": [], "added": [], "removed": []})  # fmt: skip
        db.session.commit()
        assert (event.causation_id, event.correlation_id) == (task.id, "delivery-1")


@BOTH_DATABASES
def test_observing_a_remote_clock_moves_the_local_one_past_it(app):
    case_id = make_case(app)
    from app.events.record import record_event

    with app.app_context():
        case = db.session.get(Case, case_id)
        before = record_event(case, "case.assigned", payload={"assignee": None})
        db.session.commit()
        assert node_clock.observe(before.lamport + 500) == before.lamport + 500
        assert node_clock.observe(3) == before.lamport + 500  # never backwards
        after = record_event(case, "case.assigned", payload={"assignee": None})
        db.session.commit()
        assert after.lamport == before.lamport + 501
        assert after.seq == before.seq + 1  # positions are local and dense


def test_the_node_id_is_made_once_and_kept(app):
    with app.app_context():
        first = node_clock.node_id()
        assert len(first) == 26 and node_clock.node_id() == first


def test_reading_events_while_a_writer_holds_its_transaction_waits_for_nothing(app, client):
    """Readers never block on the clock row (only writers take turns)."""
    case_id = make_case(app)
    with app.app_context():
        case = db.session.get(Case, case_id)
        from app.events.record import record_event

        record_event(case, "case.assigned", payload={"assignee": None})
        db.session.flush()
        answers = []
        thread = threading.Thread(target=lambda: answers.append(client.get("/api/events")))
        thread.start()
        thread.join(timeout=10)
        db.session.rollback()
    assert answers and answers[0].get_json()["events"] == []


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_writer_holding_the_case_row_and_another_writing_events_never_deadlock(app):
    """The clock row is the last lock a writer takes: one transaction holding the case row
    (``SELECT … FOR UPDATE``, as branches and handoffs do) and another changing that case
    both finish."""
    from app.events.record import record_event

    case_id = make_case(app)
    locked, errors = threading.Event(), []
    payload = {"tags": [], "added": [], "removed": []}

    def holder():
        try:
            with app.app_context():
                db.session.execute(db.select(Case.id).where(Case.id == case_id).with_for_update())
                locked.set()
                time.sleep(0.5)  # the other writer is waiting on the case row meanwhile
                record_event(db.session.get(Case, case_id), "case.tagged", payload=payload)
                db.session.commit()
        except Exception as exc:  # a deadlock lands here
            errors.append(exc)
            locked.set()

    def changer():
        try:
            with app.app_context():
                locked.wait(10)
                case = db.session.get(Case, case_id)
                case.title = "changed"
                record_event(case, "case.tagged", payload=payload)
                db.session.commit()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=holder), threading.Thread(target=changer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(CaseEvent)) == 2


@BOTH_DATABASES
def test_a_savepoint_rolled_back_keeps_the_events_written_before_it_stamped(app):
    from app.events.record import record_event

    case_id = make_case(app)
    payload = {"tags": [], "added": [], "removed": []}
    with app.app_context():
        case = db.session.get(Case, case_id)
        kept = record_event(case, "case.tagged", payload=payload)
        db.session.flush()
        savepoint = db.session.begin_nested()
        gone = record_event(case, "case.tagged", payload=payload)
        db.session.flush()
        savepoint.rollback()
        db.session.commit()
        rows = db.session.execute(db.select(CaseEvent.id, CaseEvent.seq)).all()
        assert [row.id for row in rows] == [kept.id] and rows[0].seq is not None
        assert gone.id != kept.id
