"""Handoffs (SPEC C5): park/escalate with a snapshot, assessment, the queue, claiming, time
accounting (domain), and the console: modal, panel, queue page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.accounts.models import User
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.handoffs import service
from app.handoffs.models import Handoff
from app.handoffs.service import (
    HandoffConflict,
    HandoffInputError,
    build_snapshot,
    claim,
    create_handoff,
    format_duration,
    queue,
)
from app.tasks import run_due
from app.writing import Written
from tests.conftest import BOTH_DATABASES, add_case
from tests.test_browser import browser_page, live_server  # noqa: F401  (browser fixtures)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class StubWriter:
    """A writer that answers, to check what handoffs store from it."""

    name = "stub-writer"

    def __init__(self):
        self.contexts: list[dict] = []

    def branch_summary(self, branch: dict) -> Written:
        return Written(f"summary of {branch['label']}", writer=self.name)

    def assessment(self, context: dict) -> Written:
        self.contexts.append(context)
        data = {
            "likely_cause": "The disk filled up with logs",
            "suggested_steps": ["Rotate the logs", "Add an alert at 80 %"],
            "confidence": "medium",
        }
        return Written(data=data, writer=self.name)

    def briefing(self, context: dict, handoff: dict) -> Written:
        self.contexts.append(context)
        return Written(
            f"Picked up from {handoff['created_by']}: {handoff['notes']}", writer=self.name
        )


class SilentWriter(StubWriter):
    """The built-in writer before it writes assessments and briefings."""

    name = "silent"

    def assessment(self, context: dict) -> Written:
        raise NotImplementedError

    def briefing(self, context: dict, handoff: dict) -> Written:
        raise NotImplementedError


@pytest.fixture
def stub_writer(monkeypatch):
    writer = StubWriter()
    monkeypatch.setattr("app.writing.get_writer", lambda: writer)
    return writer


@pytest.fixture
def silent_writer(monkeypatch):
    writer = SilentWriter()
    monkeypatch.setattr("app.writing.get_writer", lambda: writer)
    return writer


def _user(email: str, role: str = "engineer", active: bool = True) -> User:
    user = User(email=email, password_hash="x", role=role, active=active)
    db.session.add(user)
    db.session.flush()
    return user


def _case(title: str = "Disk full on db-1", status: str = "open", at: datetime = T0) -> Case:
    return add_case(title, status, at)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def ann(ctx):
    return _user("ann@example.com")


@pytest.fixture
def bob(ctx):
    return _user("bob@example.com")


@pytest.fixture
def case(ctx):
    case = _case()
    db.session.commit()
    return case


def _events(case: Case, type_: str) -> list[CaseEvent]:
    return list(
        db.session.scalars(
            db.select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.type == type_)
        )
    )


# -- creating ------------------------------------------------------------------------------


def test_park_moves_the_case_and_writes_its_event(case, ann, silent_writer):
    with clock.frozen_at(T0 + timedelta(minutes=30)):
        handoff = create_handoff(
            case,
            "park",
            "  Customer is sending the disk usage report ",
            "normal",
            ann,
            waiting_on="customer",
            resume_at=T0 + timedelta(days=1),
        )
        db.session.commit()
    assert case.status == "parked"
    assert (handoff.intent, handoff.priority, handoff.notes, handoff.waiting_on) == (
        "park",
        "normal",
        "Customer is sending the disk usage report",
        "customer",
    )
    assert handoff.created_by_id == ann.id and handoff.claimed_at is None
    assert handoff.assessment is None  # parking asks for no assessment
    [event] = _events(case, "case.parked")
    assert event.actor == "ann@example.com"
    assert event.payload["handoff_id"] == handoff.id
    assert event.payload["from"] == "open" and event.payload["to"] == "parked"
    assert "Parked, waiting on customer" in event.payload["summary"]
    assert service.pending_handoff(case) is handoff


def test_escalation_stores_the_writers_assessment(case, ann, bob, stub_writer):
    handoff = create_handoff(
        case, "escalate", "Out of my depth: kernel OOM", "elevated", ann, to_user=bob
    )
    db.session.commit()
    assert case.status == "escalated"
    # The request only asked for the assessment; a task writes it after the commit.
    assert handoff.assessment is None and stub_writer.contexts == []
    assert handoff.to_dict()["assessment_task"]["status"] == "queued"
    assert run_due() == 1
    db.session.refresh(handoff)
    assert handoff.to_dict()["assessment_task"]["status"] == "succeeded"
    assert handoff.assessment == {
        "likely_cause": "The disk filled up with logs",
        "suggested_steps": ["Rotate the logs", "Add an alert at 80 %"],
        "confidence": "medium",
    }
    assert handoff.writer == "stub-writer"
    assert handoff.to_user_id == bob.id
    [event] = _events(case, "case.escalated")
    assert event.payload["handoff_id"] == handoff.id
    assert event.payload["to_user"] == "bob@example.com"
    assert event.payload["priority"] == "elevated"
    # The writer got the whole case as plain data, the new handoff included.
    [context] = stub_writer.contexts
    assert set(context) >= {
        "case",
        "events",
        "deliveries",
        "branches",
        "active_branch_id",
        "handoffs",
    }
    assert context["case"]["id"] == case.id
    assert context["handoffs"][-1]["notes"] == "Out of my depth: kernel OOM"
    assert any(e["type"] == "case.escalated" for e in context["events"])
    json.dumps(context)  # plain data only


def test_escalation_without_an_assessment_from_the_writer_still_escalates(case, ann, silent_writer):
    handoff = create_handoff(case, "escalate", "Needs a DBA", "normal", ann)
    db.session.commit()
    assert case.status == "escalated"
    assert handoff.assessment is None and handoff.writer is None


def test_a_writer_that_breaks_does_not_break_the_escalation(case, ann, monkeypatch):
    class Broken(StubWriter):
        def assessment(self, context):
            raise RuntimeError("model server on fire")

    monkeypatch.setattr("app.writing.get_writer", Broken)
    handoff = create_handoff(case, "escalate", "Needs a DBA", "normal", ann)
    assert case.status == "escalated" and handoff.assessment is None


def test_the_configured_writer_is_used_as_it_is(case, ann):
    # Whatever the built-in writer does today (assessment or NotImplementedError), an
    # escalation succeeds, and a stored assessment has the documented shape.
    handoff = create_handoff(case, "escalate", "Needs a DBA", "normal", ann)
    db.session.commit()
    if handoff.assessment is not None:
        assert set(handoff.assessment) == {"likely_cause", "suggested_steps", "confidence"}
        assert handoff.assessment["confidence"] in ("low", "medium", "high")


def test_a_closed_case_cannot_be_handed_off(ctx, ann):
    case = _case(status="closed")
    with pytest.raises(TransitionError, match="a closed case cannot become parked; allowed: open"):
        create_handoff(case, "park", "waiting", "normal", ann)
    assert db.session.scalar(db.select(db.func.count(Handoff.id))) == 0
    assert _events(case, "case.parked") == []


def test_a_second_handoff_waits_for_the_first_to_be_claimed(case, ann, bob, silent_writer):
    first = create_handoff(case, "park", "waiting on the vendor", "normal", ann)
    db.session.commit()
    with pytest.raises(HandoffConflict) as refused:
        create_handoff(case, "escalate", "vendor is silent", "elevated", bob)
    assert refused.value.code == "handoff_pending"
    assert refused.value.handoff is first
    assert f"handoff #{first.id}" in str(refused.value)
    assert "claim it before" in str(refused.value)
    assert case.status == "parked"
    # Once claimed, the case can be handed off again.
    claim(first, bob)
    second = create_handoff(case, "escalate", "vendor is silent", "elevated", bob)
    assert case.status == "escalated" and service.pending_handoff(case) is second


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("shelve", "x", "normal"), {}, "intent must be one of park, escalate"),
        (("park", "x", "urgent"), {}, "priority must be one of normal, elevated"),
        (("park", "   ", "normal"), {}, "notes is required: say what are you waiting on"),
        (("escalate", "", "normal"), {}, "notes is required: say why"),
        (("park", "x" * 5001, "normal"), {}, "notes is longer than 5000 characters"),
        (("escalate", "x", "normal"), {"waiting_on": "vendor"}, "apply to parking only"),
        (("park", "x", "normal"), {"resume_at": T0 - timedelta(hours=1)}, "in the future"),
    ],
)
def test_bad_values_are_refused_before_anything_changes(case, ann, args, kwargs, message):
    with clock.frozen_at(T0), pytest.raises(HandoffInputError, match=message):
        create_handoff(case, *args, ann, **kwargs)
    assert case.status == "open"
    assert db.session.scalar(db.select(db.func.count(Handoff.id))) == 0


def test_escalating_to_someone_needs_an_active_engineer(case, ann):
    viewer = _user("vic@example.com", role="viewer")
    gone = _user("gone@example.com", active=False)
    for user in (viewer, gone):
        with pytest.raises(HandoffInputError, match="needs an active engineer or admin") as e:
            create_handoff(case, "escalate", "why", "normal", ann, to_user=user)
        assert e.value.field == "to_user"
    with pytest.raises(HandoffInputError, match="escalations only"):
        create_handoff(case, "park", "why", "normal", ann, to_user=_user("eve@example.com"))


# -- the snapshot --------------------------------------------------------------------------


def _branches() -> list[dict]:
    # The writer's branch dicts, as app.branches gives them (siblings out of tree order).
    return [
        {
            "id": 1,
            "label": "Investigation",
            "status": "active",
            "parent_id": None,
            "reason": None,
            "summary": "Looked at the alert",
            "notes": [{"text": "df -h"}],
        },
        {
            "id": 2,
            "label": "Log growth",
            "status": "dead_end",
            "parent_id": 1,
            "reason": "logrotate ran fine",
            "summary": "Checked logrotate",
            "notes": [],
        },
        {
            "id": 4,
            "label": "Inode exhaustion",
            "status": "untried",
            "parent_id": 3,
            "reason": None,
            "summary": "",
            "notes": [],
        },
        {
            "id": 3,
            "label": "Backups on the data disk",
            "status": "active",
            "parent_id": 1,
            "reason": None,
            "summary": "",
            "notes": [{"text": "found 40 GB of dumps"}],
            "badge": "revived",
        },
    ]


def test_snapshot_records_where_the_case_stands(case, ann, stub_writer):
    case.active_branch_id = 3
    case.assignee = ann
    with clock.frozen_at(T0 + timedelta(hours=2, minutes=5)):
        snap = build_snapshot(case, _branches(), intent="park", notes="waiting on the DBA")
    assert snap["status"] == "open"
    assert snap["assignee"] == "ann@example.com"
    assert (snap["active_seconds"], snap["parked_seconds"]) == (7500, 0)
    # Tree order with depth; the badge says "revived" where the status cannot.
    assert [(b["label"], b["depth"], b["badge"]) for b in snap["branch_map"]] == [
        ("Investigation", 0, "active"),
        ("Log growth", 1, "dead_end"),
        ("Backups on the data disk", 1, "revived"),
        ("Inode exhaustion", 2, "untried"),
    ]
    # A branch without a summary gets the built-in writer's, never the configured writer's
    # (the snapshot is taken under the case's lock; the configured one may be a slow LLM).
    assert snap["active_branch"] == {
        "id": 3,
        "label": "Backups on the data disk",
        "status": "active",
        "summary": "- Tried: found 40 GB of dumps",
    }
    # Tried: worked branches, with their own summary or the built-in writer's.
    assert [(t["label"], t["summary"]) for t in snap["tried"]] == [
        ("Investigation", "Looked at the alert"),
        ("Log growth", "Checked logrotate"),
        ("Backups on the data disk", "- Tried: found 40 GB of dumps"),
    ]
    assert stub_writer.contexts == []
    assert snap["watch_out"] == [{"id": 2, "label": "Log growth", "reason": "logrotate ran fine"}]
    assert snap["next_step"] == "Continue on “Backups on the data disk”."
    assert snap["waiting_on"] == "waiting on the DBA"
    json.dumps(snap)


def test_next_step_comes_from_the_branch_map_or_from_the_person(case, stub_writer):
    solved = [
        {
            "id": 1,
            "label": "Root",
            "status": "solved",
            "parent_id": None,
            "reason": "deleted the dumps",
            "summary": "x",
        }
    ]
    snap = build_snapshot(case, solved, intent="escalate", notes="confirm")
    assert snap["next_step"] == "Resolve the case: “Root” solved it (deleted the dumps)."
    untried = [
        {"id": 1, "label": "Root", "status": "dead_end", "parent_id": None, "summary": "x"},
        {"id": 2, "label": "A", "status": "untried", "parent_id": 1},
        {"id": 3, "label": "B", "status": "untried", "parent_id": 1},
    ]
    case.active_branch_id = 1
    snap = build_snapshot(case, untried, intent="park", notes="n")
    assert snap["next_step"] == "Try the untried hypotheses: “A”, “B”."
    assert (
        build_snapshot(case, [], intent="park", notes="the logs", waiting_on="customer")[
            "next_step"
        ]
        == "Pick the case up again once this arrives: customer"
    )
    assert (
        build_snapshot(case, [], intent="park", notes="n", next_step="Call Bob")["next_step"]
        == "Call Bob"
    )


def test_snapshot_is_stored_with_the_handoff(case, ann, silent_writer):
    handoff = create_handoff(
        case, "escalate", "Needs a DBA", "normal", ann, next_step="Check the replication lag"
    )
    db.session.commit()
    db.session.expire_all()
    snap = db.session.get(Handoff, handoff.id).snapshot
    assert snap["status"] == "open"
    assert snap["next_step"] == "Check the replication lag"
    assert snap["waiting_on"] is None
    assert set(snap) >= {"branch_map", "active_branch", "tried", "watch_out"}


def test_snapshot_uses_the_real_branch_map_when_there_is_one(case, ann, silent_writer):
    branches = pytest.importorskip("app.branches.service")
    if not hasattr(branches, "fork"):
        pytest.skip("app.branches has no fork yet")
    branches.ensure_root(case)
    a, b, _c = branches.fork(
        case,
        "three ideas",
        [
            {"label": "Logs", "description": "log growth"},
            {"label": "Backups", "description": "dumps"},
            {"label": "Inodes", "description": "small files"},
        ],
        actor=ann,
    )
    branches.switch(case, a, actor=ann)
    branches.add_note(a, "logrotate ran at 03:00, nothing big", actor=ann)
    branches.set_status(a, "dead_end", "logs are small", actor=ann)
    branches.switch(case, b, actor=ann)
    db.session.commit()
    handoff = create_handoff(case, "park", "waiting on the backup owner", "normal", ann)
    snap = handoff.snapshot
    assert [x["label"] for x in snap["branch_map"]][1:] == ["Logs", "Backups", "Inodes"]
    assert snap["branch_map"][0]["depth"] == 0 and snap["branch_map"][1]["depth"] == 1
    assert snap["active_branch"]["label"] == "Backups"
    assert snap["watch_out"] == [{"id": a.id, "label": "Logs", "reason": "logs are small"}]
    assert "Logs" in [t["label"] for t in snap["tried"]]
    assert snap["next_step"] == "Continue on “Backups”."


# -- claiming ------------------------------------------------------------------------------


def test_claim_reopens_assigns_and_briefs(case, ann, bob, stub_writer):
    handoff = create_handoff(case, "escalate", "Needs a DBA", "elevated", ann)
    db.session.commit()
    with clock.frozen_at(T0 + timedelta(hours=1)):
        claim(handoff, bob)
        db.session.commit()
    assert handoff.briefing is None  # a task writes it after the commit
    assert run_due() == 2  # the escalation's assessment and the claim's briefing
    db.session.refresh(handoff)
    assert case.status == "open"
    assert case.assignee_id == bob.id
    assert (handoff.claimed_by_id, handoff.claimed_at.replace(tzinfo=UTC)) == (
        bob.id,
        T0 + timedelta(hours=1),
    )
    assert handoff.briefing == "Picked up from ann@example.com: Needs a DBA"
    [event] = _events(case, "case.claimed")
    assert event.actor == "bob@example.com"
    assert event.payload["handoff_id"] == handoff.id
    assert event.payload["from"] == "escalated" and event.payload["to"] == "open"
    [assigned] = _events(case, "case.assigned")
    assert assigned.payload == {"assignee": "bob@example.com"}
    assert service.pending_handoff(case) is None
    assert queue() == []


def test_claim_without_a_briefing_from_the_writer_composes_one(case, ann, bob, silent_writer):
    handoff = create_handoff(
        case, "park", "Waiting for the disk report", "normal", ann, waiting_on="customer"
    )
    handoff.snapshot = {
        **handoff.snapshot,
        "watch_out": [{"id": 7, "label": "Log growth", "reason": "logs small"}],
        "tried": [{"label": "Log growth", "status": "dead_end", "summary": "Checked logrotate"}],
    }
    claim(handoff, bob)
    db.session.commit()
    assert run_due() == 1
    db.session.refresh(handoff)
    briefing = handoff.briefing
    assert briefing.startswith("**Parked** by ann@example.com: Waiting for the disk report")
    assert "Waiting on: customer" in briefing
    assert "“Log growth” (dead_end): Checked logrotate" in briefing
    assert "**Watch out — dead ends, do not repeat**" in briefing
    assert "- “Log growth”: logs small" in briefing
    assert "**Next step:**" in briefing
    assert handoff.writer is None


def test_claiming_twice_names_who_has_it(case, ann, bob, silent_writer):
    handoff = create_handoff(case, "park", "waiting", "normal", ann)
    db.session.commit()
    claim(handoff, bob)
    db.session.commit()
    with pytest.raises(HandoffConflict, match=r"already claimed by bob@example\.com") as refused:
        claim(handoff, ann)
    assert refused.value.code == "already_claimed"
    assert case.assignee_id == bob.id


def test_a_handoff_whose_case_moved_on_no_longer_waits(case, ann, bob, silent_writer):
    from app.cases import lifecycle

    handoff = create_handoff(case, "park", "waiting", "normal", ann)
    lifecycle.transition(case, "closed", reason="manual", actor=ann)
    db.session.commit()
    assert queue() == [] and service.pending_handoff(case) is None
    with pytest.raises(HandoffConflict, match=r"case #\d+ is closed now") as refused:
        claim(handoff, bob)
    assert refused.value.code == "handoff_not_waiting"
    # Reopened and handed off again: only the newest handoff waits.
    lifecycle.transition(case, "open", actor=ann)
    newer = create_handoff(case, "escalate", "still broken", "normal", ann)
    assert queue() == [newer]
    with pytest.raises(HandoffConflict, match="a newer handoff replaced it"):
        claim(handoff, bob)


# -- the queue -----------------------------------------------------------------------------


@BOTH_DATABASES
def test_queue_is_elevated_first_then_oldest_and_filters_by_intent(ctx, silent_writer):
    ann = _user("ann@example.com")
    made = {}
    for minutes, name, intent, priority in [
        (0, "old park", "park", "normal"),
        (10, "new escalation", "escalate", "normal"),
        (20, "elevated park", "park", "elevated"),
        (30, "elevated escalation", "escalate", "elevated"),
        (40, "claimed", "park", "elevated"),
    ]:
        with clock.frozen_at(T0 + timedelta(minutes=minutes)):
            case = _case(name)
            made[name] = create_handoff(case, intent, "n", priority, ann)
    claim(made["claimed"], ann)
    db.session.commit()

    def titles(intent=None):
        return [h.case.title for h in queue(intent)]

    assert titles() == ["elevated park", "elevated escalation", "old park", "new escalation"]
    assert titles("park") == ["elevated park", "old park"]
    assert titles("escalate") == ["elevated escalation", "new escalation"]
    with pytest.raises(HandoffInputError):
        queue("snooze")


# -- time ----------------------------------------------------------------------------------


def test_active_and_parked_time_accumulate_through_handoffs(case, ann, bob, silent_writer):
    from app.cases.lifecycle import live_seconds
    from app.handoffs.routes import provide

    with clock.frozen_at(T0 + timedelta(minutes=30)):
        handoff = create_handoff(case, "park", "waiting", "normal", ann)
    with clock.frozen_at(T0 + timedelta(hours=2, minutes=35)):
        assert live_seconds(case) == (30 * 60, 2 * 3600 + 5 * 60)
        assert provide(case)["handoff_time"] == {"active": "30 min", "parked": "2 h 5 min"}
        claim(handoff, bob)
    with clock.frozen_at(T0 + timedelta(hours=3, minutes=35)):
        assert live_seconds(case) == (90 * 60, 2 * 3600 + 5 * 60)
        assert provide(case)["handoff_time"] == {"active": "1 h 30 min", "parked": "2 h 5 min"}
    assert (case.active_seconds, case.parked_seconds) == (30 * 60, 2 * 3600 + 5 * 60)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 min"),
        (59, "0 min"),
        (300, "5 min"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
        (86400, "1 d"),
        (90000, "1 d 1 h"),
    ],
)
def test_durations_read_like_people_write_them(seconds, text):
    assert format_duration(seconds) == text


# -- console: the modal --------------------------------------------------------------------

HX = {"HX-Request": "true"}


@pytest.fixture
def case_id(app):
    with app.app_context():
        case = _case("Disk full on db-1")
        db.session.commit()
        return case.id


def test_modal_is_a_fragment_for_engineers(engineer_client, viewer_client, case_id):
    modal = engineer_client.get(f"/cases/{case_id}/handoff", headers=HX)
    assert modal.status_code == 200
    body = modal.get_data(as_text=True)
    assert "<html" not in body
    assert 'role="dialog"' in body and 'aria-modal="true"' in body
    assert "What are you waiting on?" in body and "Why?" in body
    assert 'name="priority" value="elevated"' in body
    assert "engineer@example.com (engineer)" in body  # escalate to a user
    # Escape, Cancel, the close button and the backdrop close it (static/console.js, [data-modal]).
    assert 'data-modal data-modal-return="handoff-open"' in body
    assert body.count("data-modal-close") == 2
    assert "HX-Request" in modal.headers["Vary"]
    # Without htmx it is a page of its own; viewers may not hand off.
    assert "<html" in engineer_client.get(f"/cases/{case_id}/handoff").get_data(as_text=True)
    assert viewer_client.get(f"/cases/{case_id}/handoff", headers=HX).status_code == 403
    assert engineer_client.get("/cases/999/handoff", headers=HX).status_code == 404


def test_modal_validates_inline(app, engineer_client, case_id):
    response = engineer_client.post(
        f"/cases/{case_id}/handoffs", data={"intent": "park", "notes": " "}, headers=HX
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'role="dialog"' in body
    assert "Say what you are waiting on." in body
    assert 'aria-invalid="true"' in body

    response = engineer_client.post(
        f"/cases/{case_id}/handoffs",
        data={"intent": "park", "notes": "logs", "resume_at": "tomorrow-ish"},
        headers=HX,
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Give a date and time" in body
    assert ">logs</textarea>" in body  # what was typed stays

    response = engineer_client.post(
        f"/cases/{case_id}/handoffs",
        data={"intent": "park", "notes": "logs", "resume_at": "2020-01-01T09:00"},
        headers=HX,
    )
    assert response.status_code == 422
    assert "The resume time must be in the future." in response.get_data(as_text=True)

    response = engineer_client.post(
        f"/cases/{case_id}/handoffs", data={"intent": "nap", "notes": "x"}, headers=HX
    )
    assert response.status_code == 422
    assert "Choose park or escalate." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Case, case_id).status == "open"


def test_modal_success_closes_and_updates_the_panel_in_place(app, engineer_client, case_id):
    response = engineer_client.post(
        f"/cases/{case_id}/handoffs",
        data={
            "intent": "escalate",
            "notes": "Needs a DBA",
            "priority": "elevated",
            # park-only fields sent by the form are ignored for an escalation
            "waiting_on": "ignored",
            "resume_at": "garbage",
            "to_user": "",
        },
        headers=HX,
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_data(as_text=True)
    # Nothing but out-of-band swaps: #modal gets emptied, the panel and badge replaced.
    outside = re.sub(r"<(section|span|header|ol)[^>]*hx-swap-oob.*?</\1>", "", body, flags=re.S)
    assert outside.strip() == ""
    assert re.search(r'<section id="handoff-panel"[^>]*hx-swap-oob="true"', body)
    # The case header (its status badge) and timeline come along, out of band.
    assert 'class="badge status-escalated" id="case-status"' in body
    assert re.search(r'id="(case-head|case-status)"[^>]*hx-swap-oob="true"', body)
    assert "Needs a DBA" in body and "elevated" in body
    assert json.loads(response.headers["HX-Trigger"]) == {"case-changed": {"source": "handoffs"}}
    with app.app_context():
        handoff = db.session.scalars(db.select(Handoff)).one()
        assert (handoff.intent, handoff.priority, handoff.waiting_on) == (
            "escalate",
            "elevated",
            None,
        )
        assert handoff.created_by.email == "engineer@example.com"
        assert db.session.get(Case, case_id).status == "escalated"


def test_modal_refuses_what_the_case_cannot_do_inline(app, engineer_client, case_id):
    data = {"intent": "park", "notes": "waiting on the vendor", "waiting_on": "vendor"}
    assert (
        engineer_client.post(f"/cases/{case_id}/handoffs", data=data, headers=HX).status_code == 200
    )
    again = engineer_client.post(f"/cases/{case_id}/handoffs", data=data, headers=HX)
    assert again.status_code == 422
    assert "already has handoff #" in again.get_data(as_text=True)
    with app.app_context():
        closed = _case("Closed one", status="closed")
        db.session.commit()
        closed_id = closed.id
    refused = engineer_client.post(f"/cases/{closed_id}/handoffs", data=data, headers=HX)
    assert refused.status_code == 422
    assert "A closed case cannot become parked; allowed: open." in refused.get_data(as_text=True)


def test_modal_without_htmx_redirects_to_the_case(engineer_client, case_id):
    response = engineer_client.post(
        f"/cases/{case_id}/handoffs", data={"intent": "park", "notes": "vendor"}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/cases/{case_id}")
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Parked case" in page


def test_modal_needs_the_csrf_token(csrf_app, make_user, case_id):
    from tests.conftest import signed_in_client

    client = signed_in_client(csrf_app, make_user("engineer"))
    response = client.post(
        f"/cases/{case_id}/handoffs", data={"intent": "park", "notes": "x"}, headers=HX
    )
    assert response.status_code == 400


# -- console: the case page panel ----------------------------------------------------------


def test_case_page_shows_time_history_and_the_button(app, engineer_client, viewer_client, case_id):
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="handoff-panel"' in page
    assert "No handoffs yet." in page
    assert "Park or escalate…" in page
    assert 'id="case-active-time"' in page
    assert "Park or escalate…" not in viewer_client.get(f"/cases/{case_id}").get_data(as_text=True)

    engineer_client.post(
        f"/cases/{case_id}/handoffs",
        data={"intent": "escalate", "notes": "Needs <b>a DBA</b>"},
        headers=HX,
    )
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Park or escalate…" not in page  # one handoff waits at a time
    assert "waiting in the" in page and ">Claim</button>" in page
    assert "Needs &lt;b&gt;a DBA&lt;/b&gt;" in page and "<b>a DBA" not in page
    assert "<summary>Snapshot</summary>" in page
    viewer_page = viewer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert ">Claim</button>" not in viewer_page and "<summary>Snapshot</summary>" in viewer_page


def test_the_panel_reloads_on_its_own(app, viewer_client, case_id):
    response = viewer_client.get(f"/cases/{case_id}/handoffs/panel", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="handoff-panel"')
    assert "hx-swap-oob" not in body.split(">")[0]
    assert 'hx-trigger="case-refresh" data-case-panel="handoffs"' in body  # static/console.js


def test_claim_from_the_case_panel(app, engineer_client, case_id, silent_writer):
    engineer_client.post(
        f"/cases/{case_id}/handoffs", data={"intent": "park", "notes": "vendor"}, headers=HX
    )
    with app.app_context():
        hid = db.session.scalars(db.select(Handoff.id)).one()
    response = engineer_client.post(
        f"/handoffs/{hid}/claim", headers={**HX, "HX-Target": "handoff-panel"}
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="handoff-panel"')
    assert "claimed by engineer@example.com" in body
    # The briefing is being written by a task: the panel polls for it, then shows it open.
    assert "being written…" in body
    piece = re.search(r'hx-get="([^"]*/writing/briefing/[^"]*)"', body).group(1)
    assert 'hx-trigger="load delay:' in body
    with app.app_context():
        assert run_due() == 1
    written = engineer_client.get(piece.replace("&amp;", "&"), headers=HX).get_data(as_text=True)
    assert "being written…" not in written and "hx-get" not in written
    assert "<details open>" in written and "Briefing for engineer@example.com" in written
    assert 'class="badge status-open" id="case-status"' in body
    assert re.search(r'id="(case-head|case-status)"[^>]*hx-swap-oob="true"', body)


# -- console: the queue --------------------------------------------------------------------


def _queue_cases(app, silent) -> dict[str, int]:
    with app.app_context():
        ann = _user("ann@example.com")
        ids = {}
        for minutes, title, intent, priority, resume in [
            (0, "Old park", "park", "normal", None),
            (2, "Vendor park", "park", "normal", timedelta(hours=5)),
            (5, "Hot escalation", "escalate", "elevated", None),
            (7, "Calm escalation", "escalate", "normal", None),
        ]:
            with clock.frozen_at(clock.now() - timedelta(hours=2) + timedelta(minutes=minutes)):
                case = _case(title, at=clock.now())
                handoff = create_handoff(
                    case,
                    intent,
                    f"notes of {title}",
                    priority,
                    ann,
                    waiting_on=f"vendor of {title}" if intent == "park" else None,
                    resume_at=clock.now() + resume if resume else None,
                )
            ids[title] = handoff.id
        db.session.commit()
        return ids


def _between(body: str, start: str, end: str) -> str:
    return body[body.index(start) : body.index(end, body.index(start))]


def test_the_claim_queue_holds_escalations_and_parked_cases_wait_apart(
    app, viewer_client, silent_writer
):
    empty = viewer_client.get("/queue").get_data(as_text=True)
    assert "Nothing waiting to be claimed" in empty and "Park or escalate" in empty
    _queue_cases(app, silent_writer)
    page = viewer_client.get("/queue")
    body = page.get_data(as_text=True)
    assert "<html" in body and "HX-Request" in page.headers["Vary"]
    queue_part = _between(body, 'id="handoff-queue"', "</table>")
    # The claim queue: escalations, elevated first; parked cases are not in it.
    assert queue_part.index("Hot escalation") < queue_part.index("Calm escalation")
    assert "Old park" not in queue_part and "Vendor park" not in queue_part
    assert "ann@example.com" in queue_part and "h ago" in queue_part
    assert ">Claim</button>" not in body  # viewers read only
    tabs = _between(body, 'id="queue-tabs"', "</nav>")
    assert re.search(r'aria-current="page">To claim <span class="count"[^>]*>2<', tabs), tabs
    assert re.search(r'>Parked <span class="count"[^>]*>2<', tabs), tabs

    # Parked: what each waits on and when to resume, the soonest resume first.
    fragment = viewer_client.get("/queue?intent=park", headers=HX)
    text = fragment.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="handoff-queue"')
    assert "Hot escalation" not in text and "Calm escalation" not in text
    assert text.index("Vendor park") < text.index("Old park")
    assert "vendor of Vendor park" in text and "vendor of Old park" in text
    assert ">in 3 h<" in text, text  # the resume time, relative
    assert "when it arrives" in text  # no resume time given
    assert fragment.headers["HX-Push-Url"] == "/queue?intent=park"
    assert 'hx-push-url="true"' in text
    for other in ("bogus", "escalate", ""):
        answer = viewer_client.get(f"/queue?intent={other}", headers=HX)
        assert answer.headers["HX-Push-Url"] == "/queue"
        assert "Hot escalation" in answer.get_data(as_text=True)


def test_a_parked_case_past_its_resume_time_is_due(app, viewer_client, silent_writer):
    ids = _queue_cases(app, silent_writer)
    with clock.frozen_at(clock.now() + timedelta(hours=4)):
        text = viewer_client.get("/queue?intent=park").get_data(as_text=True)
    row = _between(text, f'id="handoff-row-{ids["Vendor park"]}"', "</tr>")
    assert "handoffs-due" in row
    assert "handoffs-due" not in _between(text, f'id="handoff-row-{ids["Old park"]}"', "</tr>")


def test_claim_from_the_queue_opens_the_briefing_and_updates_the_counts(
    app, engineer_client, client, silent_writer
):
    ids = _queue_cases(app, silent_writer)
    page = engineer_client.get("/queue").get_data(as_text=True)
    assert ">Claim</button>" in page
    nav = page.split('id="main"')[0]
    assert re.search(r'id="nav-queue-count"[^>]*>2</span>', nav), nav
    hid = ids["Hot escalation"]
    row = {**HX, "HX-Target": f"handoff-row-{hid}"}
    claimed = engineer_client.post(f"/handoffs/{hid}/claim", headers=row)
    assert claimed.status_code == 200
    body = claimed.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="handoff-row-{hid}"')
    assert "its briefing is open above" in _between(body, "<tr", "</tr>")
    # The briefing in its own panel; the tabs and the nav's badge follow, all out of band.
    panel = _between(body, '<section id="queue-briefing"', "</section>")
    assert 'hx-swap-oob="true"' in panel and "You claimed case #" in panel
    assert "being written…" in panel  # the briefing: a task writes it after the commit
    assert "Open case #" in panel
    tabs = _between(body, '<nav class="status-tabs" id="queue-tabs"', "</nav>")
    assert 'hx-swap-oob="true"' in tabs
    assert re.search(r'>To claim <span class="count"[^>]*>1<', tabs), tabs
    assert re.search(r'>Parked <span class="count"[^>]*>2<', tabs), tabs
    assert re.search(r'id="nav-queue-count"[^>]*hx-swap-oob="true"[^>]*>1</span>', body)
    piece = re.search(r'hx-get="([^"]*/writing/briefing/[^"]*)"', panel).group(1)
    with app.app_context():
        run_due()
    briefing = engineer_client.get(piece.replace("&amp;", "&"), headers=HX)
    assert "<strong>Escalated (elevated priority)</strong> by ann@example.com" in (
        briefing.get_data(as_text=True)
    )
    assert "case-changed" in json.loads(claimed.headers["HX-Trigger"])
    assert "Hot escalation" not in engineer_client.get("/queue").get_data(as_text=True)

    again = client.post(f"/handoffs/{hid}/claim", headers=row)
    assert again.status_code == 422
    refused = again.get_data(as_text=True)
    assert "already claimed by engineer@example.com" in refused
    assert 'id="queue-briefing"' not in refused
    # A parked case is picked up from its tab the same way; without htmx: a redirect to the
    # case; a refused one is a 409 page.
    other = ids["Old park"]
    from_parked = engineer_client.post(
        f"/handoffs/{other}/claim",
        data={"intent": "park"},
        headers={**HX, "HX-Target": f"handoff-row-{other}"},
    ).get_data(as_text=True)
    tabs = _between(from_parked, 'id="queue-tabs"', "</nav>")
    assert re.search(r'aria-current="page">Parked <span class="count"[^>]*>1<', tabs), tabs
    other = ids["Vendor park"]
    assert client.post(f"/handoffs/{other}/claim").status_code == 302
    assert client.post(f"/handoffs/{other}/claim").status_code == 409
    assert client.post("/handoffs/999/claim").status_code == 404


def test_queue_has_a_nav_link_with_a_badge(viewer_client):
    page = viewer_client.get("/queue").get_data(as_text=True)
    nav = page.split('id="main"')[0]
    assert re.search(r'href="/queue" aria-current="page">Queue\s*<span id="nav-queue-count"', nav)
    assert re.search(r'id="nav-queue-count"[^>]*hidden[^>]*>0</span>', nav)  # nothing waits
    assert "hx-swap-oob" not in nav


def test_the_nav_badge_is_one_count_and_only_on_console_pages(
    app, client, silent_writer, api_token
):
    """One COUNT query per console page; webhook and API requests render no nav, so they
    never run it."""
    from sqlalchemy import event

    _queue_cases(app, silent_writer)
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        if "count(handoffs.id)" in statement.lower():
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        page = client.get("/cases").get_data(as_text=True)
        assert re.search(r'id="nav-queue-count"[^>]*>2</span>', page)
        assert len(seen) == 1
        seen.clear()
        token = api_token("viewer")
        assert client.get("/api/cases", headers={"Authorization": f"Bearer {token}"}).json
        assert client.get("/healthz").status_code == 200
        assert seen == []
    finally:
        event.remove(engine, "before_cursor_execute", record)


# -- in the browser ------------------------------------------------------------------------


@pytest.mark.browser
@BOTH_DATABASES
def test_modal_and_queue_in_the_browser(app, make_user, silent_writer, request):
    """Open the modal from the keyboard, Escape closes it, inline errors, escalate, the panel
    and header update in place; then claim from the queue and read the briefing."""
    from tests.test_browser import _sign_in

    base_url = request.getfixturevalue("live_server")
    page = request.getfixturevalue("browser_page")
    make_user("engineer", "eng@example.com")
    with app.app_context():
        case_id = _case("Disk full on db-1", at=clock.now()).id
        db.session.commit()
    _sign_in(page, base_url, "eng@example.com", f"/cases/{case_id}")

    opener = page.get_by_role("button", name="Park or escalate…")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    notes = page.locator("#handoff-notes")
    assert notes.evaluate("el => el === document.activeElement")
    assert page.get_by_text("What are you waiting on?").is_visible()
    assert not page.get_by_text("Why?", exact=True).is_visible()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert opener.evaluate("el => el === document.activeElement")

    opener.click()
    dialog.wait_for()
    page.get_by_label("Escalate").check()
    assert page.get_by_text("Why?", exact=True).is_visible()
    assert not page.get_by_text("What are you waiting on?").is_visible()
    page.get_by_role("button", name="Hand off").click()
    page.get_by_text("Say why it needs escalating.").wait_for()
    assert dialog.is_visible()
    notes.fill("Replication lag is beyond me")
    page.get_by_label("elevated").check()
    page.get_by_role("button", name="Hand off").click()
    dialog.wait_for(state="detached")
    page.locator("#case-status", has_text="escalated").wait_for()
    panel = page.locator("#handoff-panel")
    panel.get_by_text("Replication lag is beyond me").first.wait_for()
    assert "waiting in the" in panel.inner_text()
    assert opener.count() == 0  # one handoff waits at a time

    page.get_by_role("link", name="Queue 1").click()  # the nav's badge counts it
    page.wait_for_url("**/queue")
    row = page.locator("tr[data-handoff-id]", has_text="Disk full on db-1")
    assert "elevated" in row.inner_text()
    page.get_by_role("link", name="Parked").click()
    page.wait_for_url("**/queue?intent=park")
    page.get_by_text("Nothing parked.").wait_for()
    page.get_by_role("link", name="Back to the claim queue").click()
    page.wait_for_url(lambda url: url.endswith("/queue"))
    row.get_by_role("button", name=f"Claim case #{case_id}").click()
    page.get_by_text(f"You claimed case #{case_id}").first.wait_for()
    # The counts follow the claim without a reload.
    page.locator("#nav-queue-count").wait_for(state="hidden")
    assert page.locator("#queue-tabs").inner_text().split() == ["To", "claim", "0", "Parked", "0"]
    briefing = page.locator("#queue-briefing")
    assert "being written…" in briefing.inner_text()  # a task writes it: the fragment polls
    with app.app_context():
        assert run_due() == 2  # the escalation's assessment, the briefing
    briefing.get_by_text("Replication lag is beyond me").first.wait_for()
    assert "being written…" not in briefing.inner_text()
    page.get_by_role("link", name=f"Open case #{case_id} →").click()
    page.wait_for_url(f"**/cases/{case_id}")
    assert page.locator("#case-status").inner_text() == "open"
    assert "claimed by eng@example.com" in page.locator("#handoff-panel").inner_text()

    # Another feature changes the case and says so: the panel reloads itself.
    opener.wait_for()
    with app.app_context():
        from app.cases import lifecycle

        lifecycle.transition(db.session.get(Case, case_id), "closed", reason="manual")
        db.session.commit()
    page.evaluate("htmx.trigger(document.body, 'case-changed', {})")
    opener.wait_for(state="detached")
