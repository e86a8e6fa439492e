"""The handoff JSON API: create, list, queue, claim; errors as ``{"error", "detail"}``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.tasks import run_due
from app.writing import Written
from tests.conftest import BOTH_DATABASES, add_case


@pytest.fixture(autouse=True)
def silent_writer(monkeypatch):
    """The built-in writer as it was before it wrote assessments and briefings, so these
    tests do not depend on its wording (tests/test_handoffs.py covers writers)."""

    class Silent:
        name = "silent"

        def branch_summary(self, branch):
            return Written("")

        def assessment(self, context):
            raise NotImplementedError

        def briefing(self, context, handoff):
            raise NotImplementedError

    monkeypatch.setattr("app.writing.get_writer", Silent)


@pytest.fixture
def tokens(api_token):
    return {
        role: {"Authorization": f"Bearer {api_token(role)}"}
        for role in ("viewer", "engineer", "admin")
    }


def _case(app, title="Disk full on db-1", status="open", minutes_ago=60) -> int:
    with app.app_context():
        case = add_case(title, status, clock.now() - timedelta(minutes=minutes_ago))
        db.session.commit()
        return case.id


def _post(client, case_id, headers, **body):
    return client.post(f"/api/cases/{case_id}/handoffs", json=body, headers=headers)


@BOTH_DATABASES
def test_park_then_claim_through_the_api(app, anonymous_client, tokens):
    client, case_id = anonymous_client, _case(app)
    resume = (clock.now() + timedelta(days=1)).replace(microsecond=0)
    created = _post(
        client,
        case_id,
        tokens["engineer"],
        intent="park",
        notes="Waiting for the customer's disk report",
        waiting_on="customer",
        resume_at=resume.isoformat().replace("+00:00", "Z"),
    )
    assert created.status_code == 201, created.json
    handoff = created.json
    assert handoff["intent"] == "park" and handoff["priority"] == "normal"
    assert handoff["waiting_on"] == "customer"
    assert datetime.fromisoformat(handoff["resume_at"]) == resume
    assert handoff["case"]["status"] == "parked"
    assert handoff["claimed_by"] is None and handoff["assessment"] is None
    assert handoff["snapshot"]["status"] == "open"
    assert handoff["snapshot"]["waiting_on"] == "customer"
    assert created.headers["Location"].endswith(f"/api/handoffs/{handoff['id']}")

    listed = client.get(f"/api/cases/{case_id}/handoffs", headers=tokens["viewer"]).json
    assert [h["id"] for h in listed["handoffs"]] == [handoff["id"]]
    assert listed["pending_id"] == handoff["id"]
    assert (
        client.get(created.headers["Location"], headers=tokens["viewer"]).json["id"]
        == (handoff["id"])
    )

    claimed = client.post(f"/api/handoffs/{handoff['id']}/claim", headers=tokens["admin"])
    assert claimed.status_code == 200, claimed.json
    body = claimed.json
    assert body["claimed_by"].startswith("admin-") and body["claimed_at"]
    # The briefing is written by a task after the claim commits; the API says so.
    assert body["briefing"] is None and body["briefing_task"]["status"] == "queued"
    assert body["assessment_task"] is None  # a park has no assessment
    with app.app_context():
        assert run_due() == 1
    body = client.get(f"/api/handoffs/{handoff['id']}", headers=tokens["viewer"]).json
    assert body["briefing_task"]["status"] == "succeeded"
    assert body["briefing"].startswith("**Parked** by engineer-")
    assert body["case"]["status"] == "open" and body["case"]["assignee"] == body["claimed_by"]
    with app.app_context():
        types = [
            e.type
            for e in db.session.scalars(
                db.select(CaseEvent)
                .where(CaseEvent.case_id == case_id)
                .order_by(CaseEvent.created_at)
            )
        ]
    assert types[-3:] == ["case.parked", "case.claimed", "case.assigned"]
    assert (
        client.get(f"/api/cases/{case_id}/handoffs", headers=tokens["viewer"]).json["pending_id"]
        is None
    )


def test_escalate_to_a_user_by_email(app, client, make_user):
    make_user("engineer", "bob@example.com")
    case_id = _case(app)
    created = _post(
        client,
        case_id,
        {},
        intent="escalate",
        notes="Needs a DBA",
        priority="elevated",
        to_user="Bob@Example.com",
    )
    assert created.status_code == 201, created.json
    assert created.json["to_user"] == "bob@example.com"
    assert created.json["priority"] == "elevated"
    assert created.json["case"]["status"] == "escalated"


@pytest.mark.parametrize(
    ("body", "detail", "field"),
    [
        ({"intent": "snooze", "notes": "x"}, "Input should be 'park' or 'escalate'", "intent"),
        ({"intent": "park", "notes": "x", "priority": "urgent"}, "'normal' or 'elevated'",
         "priority"),
        ({"intent": "park"}, "notes: Field required", "notes"),
        ({"intent": "park", "notes": 42}, "notes: Input should be a valid string", "notes"),
        ({"intent": "park", "notes": "x", "resume_at": "soon"}, "valid datetime", "resume_at"),
        ({"intent": "park", "notes": "x", "resume_at": 1893456000}, "ISO 8601", "resume_at"),
        ({"intent": "park", "notes": "x", "resume_at": "2020-01-01T00:00:00Z"}, "in the future",
         "resume_at"),
        ({"intent": "park", "notes": " "}, "notes is required", "notes"),
        ({"intent": "escalate", "notes": "x", "to_user": "nobody@example.com"}, "is not a user",
         "to_user"),
        ({"intent": "escalate", "notes": "x", "to_user": ["a"]}, "email or id", "to_user"),
        ({"intent": "park", "notes": "x", "colour": "red"}, "colour: is not a field", "colour"),
    ],
)  # fmt: skip
def test_bad_bodies_are_400_and_say_what_was_wrong(
    app, anonymous_client, tokens, body, detail, field
):
    case_id = _case(app)
    response = _post(anonymous_client, case_id, tokens["engineer"], **body)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_input"
    assert detail in response.json["detail"]
    assert response.json["field"] == field
    with app.app_context():
        assert db.session.get(Case, case_id).status == "open"


def test_not_json_is_400(app, anonymous_client, tokens):
    response = anonymous_client.post(
        f"/api/cases/{_case(app)}/handoffs", data="intent=park", headers=tokens["engineer"]
    )
    assert response.status_code == 400
    assert "send a JSON object" in response.json["detail"]


def test_unknown_case_or_handoff_is_404(anonymous_client, tokens):
    engineer = tokens["engineer"]
    missing = _post(anonymous_client, 999, engineer, intent="park", notes="x")
    assert missing.status_code == 404
    assert missing.json == {"error": "not_found", "detail": "there is no case 999"}
    assert anonymous_client.get("/api/cases/999/handoffs", headers=engineer).status_code == 404
    claim = anonymous_client.post("/api/handoffs/999/claim", headers=engineer)
    assert claim.status_code == 404 and claim.json["detail"] == "there is no handoff 999"


def test_conflicts_are_409_with_what_to_do(app, anonymous_client, tokens):
    engineer = tokens["engineer"]
    closed = _post(
        anonymous_client, _case(app, status="closed"), engineer, intent="park", notes="x"
    )
    assert closed.status_code == 409
    assert closed.json == {
        "error": "illegal_transition",
        "detail": "a closed case cannot become parked; allowed: open",
        "status": "closed",
        "allowed": ["open"],
    }
    case_id = _case(app)
    first = _post(anonymous_client, case_id, engineer, intent="park", notes="vendor").json
    second = _post(anonymous_client, case_id, engineer, intent="escalate", notes="vendor silent")
    assert second.status_code == 409
    assert second.json["error"] == "handoff_pending"
    assert second.json["handoff_id"] == first["id"]
    assert "claim it before handing the case off again" in second.json["detail"]

    url = f"/api/handoffs/{first['id']}/claim"
    assert anonymous_client.post(url, headers=engineer).status_code == 200
    again = anonymous_client.post(url, headers=tokens["admin"])
    assert again.status_code == 409
    assert again.json["error"] == "already_claimed"
    assert again.json["claimed_by"].startswith("engineer-")
    assert f"already claimed by {again.json['claimed_by']}" in again.json["detail"]


def test_viewers_read_but_do_not_hand_off_or_claim(app, anonymous_client, tokens):
    case_id = _case(app)
    viewer = tokens["viewer"]
    refused = _post(anonymous_client, case_id, viewer, intent="park", notes="x")
    assert refused.status_code == 403
    assert refused.json["error"] == "forbidden" and "engineer role" in refused.json["detail"]
    hid = _post(anonymous_client, case_id, tokens["engineer"], intent="park", notes="x").json["id"]
    claim = anonymous_client.post(f"/api/handoffs/{hid}/claim", headers=viewer)
    assert claim.status_code == 403
    assert anonymous_client.get("/api/queue", headers=viewer).status_code == 200
    assert anonymous_client.get(f"/api/cases/{case_id}/handoffs", headers=viewer).status_code == 200
    # Nobody signed in: 401, saying how to authenticate.
    assert anonymous_client.get("/api/queue").status_code == 401
    assert _post(anonymous_client, case_id, {}, intent="park", notes="x").status_code == 401


def test_queue_orders_and_filters(app, anonymous_client, tokens):
    engineer = tokens["engineer"]
    for minutes, title, intent, priority in [
        (50, "Old park", "park", "normal"),
        (40, "Old escalation", "escalate", "normal"),
        (30, "Elevated escalation", "escalate", "elevated"),
        (20, "Elevated park", "park", "elevated"),
    ]:
        case_id = _case(app, title)
        with clock.frozen_at(datetime.now(UTC) - timedelta(minutes=minutes)):
            response = _post(
                anonymous_client, case_id, engineer, intent=intent, notes=title, priority=priority
            )
        assert response.status_code == 201, response.json

    def titles(query=""):
        response = anonymous_client.get(f"/api/queue{query}", headers=tokens["viewer"])
        assert response.status_code == 200
        return [h["case"]["title"] for h in response.json["queue"]]

    assert titles() == ["Elevated escalation", "Elevated park", "Old park", "Old escalation"]
    assert titles("?intent=park") == ["Elevated park", "Old park"]
    assert titles("?intent=escalate") == ["Elevated escalation", "Old escalation"]
    assert titles("?intent=") == titles()
    bad = anonymous_client.get("/api/queue?intent=nap", headers=tokens["viewer"])
    assert bad.status_code == 400 and "Input should be 'park', 'escalate'" in bad.json["detail"]
    assert bad.json["field"] == "intent"


def test_session_writes_need_the_csrf_token(csrf_app, make_user, app):
    from tests.conftest import signed_in_client

    client = signed_in_client(csrf_app, make_user("engineer"))
    response = client.post(
        f"/api/cases/{_case(app)}/handoffs", json={"intent": "park", "notes": "x"}
    )
    assert response.status_code == 400
    assert response.json["error"] == "csrf_failed"
