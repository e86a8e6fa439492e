"""PagerDuty v3: every fixture through the real route and a real RQ worker, on SQLite and
Postgres; the signature check (with secret rotation) and what it refuses."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid

import pytest

from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.queue import get_queue
from app.webhooks import processing
from app.webhooks.cli import create_endpoint
from app.webhooks.models import Delivery
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.providers.pagerduty import PagerDuty
from tests.conftest import BOTH_DATABASES, FIXTURES

PAGERDUTY = FIXTURES / "pagerduty"
PRIORITY_UPDATED = "incident.priority_updated"
INCIDENT = "PGR0VU2"
# PagerDuty/go-pagerduty, webhookv3/webhookv3_test.go: this secret signs the fixture's
# exact bytes with this value.
GO_PAGERDUTY_SECRET = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
GO_PAGERDUTY_SIGNATURE = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"


def fixture(name: str = PRIORITY_UPDATED) -> dict:
    return json.loads((PAGERDUTY / f"{name}.json").read_bytes())


def v1(secret: str, body: bytes) -> str:
    """One ``v1=`` signature as PagerDuty documents it, computed here independently."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class PagerDutySender:
    """Posts signed PagerDuty v3 deliveries to one endpoint through the real route."""

    def __init__(self, app, client, secret: str | None = None):
        with app.app_context():
            endpoint, self.secret = create_endpoint("pagerduty", "API Service", secret)
            self.path = endpoint.path
        self.client = client

    def send(self, payload: dict | bytes, delivery_id: str | None = None, headers=None):
        """POST ``payload`` signed; ``headers`` override (a None value removes the header)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-Webhook-Id": delivery_id or str(uuid.uuid4()),
            "X-Webhook-Subscription": "PSFWQ6N",
            "X-PagerDuty-Signature": v1(self.secret, body),
        }
        for name, value in (headers or {}).items():
            if value is None:
                sent.pop(name, None)
            else:
                sent[name] = value
        return self.client.post(self.path, data=body, headers=sent)

    def send_fixture(self, name: str = PRIORITY_UPDATED, delivery_id: str | None = None):
        """Send ``shared/fixtures/pagerduty/<name>.json`` as it is (raw bytes)."""
        return self.send((PAGERDUTY / f"{name}.json").read_bytes(), delivery_id)


@pytest.fixture
def pagerduty(app, client):
    return PagerDutySender(app, client)


def _cases(app) -> dict:
    with app.app_context():
        return {
            case.dedup_key: {
                "title": case.title,
                "status": case.status,
                "closed_reason": case.closed_reason,
                "severity": case.severity,
                "source_url": case.source_url,
                "deliveries": case.delivery_count,
                "events": [event.type for event in case.events],
            }
            for case in db.session.scalars(db.select(Case)).all()
        }


def _deliveries(app) -> list[Delivery]:
    with app.app_context():
        return db.session.scalars(db.select(Delivery).order_by(Delivery.received_at)).all()


def _queued(app) -> int:
    with app.app_context():
        return get_queue().count


def _event(event_type: str, **data) -> dict:
    """The fixture's incident, as a delivery of ``event_type``."""
    payload = fixture()
    payload["event"]["id"] = str(uuid.uuid4())
    payload["event"]["event_type"] = event_type
    payload["event"]["data"].update(data)
    return payload


# --- the real route and a real worker ---------------------------------------------------


@BOTH_DATABASES
def test_every_fixture_becomes_the_right_case(app, pagerduty, drain):
    assert pagerduty.send_fixture().status_code == 202
    assert drain() == 0
    assert _cases(app) == {
        INCIDENT: {
            "title": "A little bump in the road",
            "status": "open",
            "closed_reason": None,
            "severity": "critical",  # priority P1 (urgency high alone would be error)
            "source_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
            "deliveries": 1,
            "events": ["case.opened"],
        }
    }
    [delivery] = _deliveries(app)
    assert (delivery.event_type, delivery.status) == ("incident.priority_updated", "processed")
    # Activity about an incident Casehook has not seen yet opens its case.
    assert delivery.outcome == "pagerduty.activity: opened a case"
    with app.app_context():
        event = db.session.scalars(db.select(CaseEvent)).one()
    assert event.payload["summary"] == "Tenex Engineer set the priority to P1"


@BOTH_DATABASES
def test_incident_lifecycle_is_one_case(app, pagerduty, drain):
    pagerduty.send(_event("incident.triggered", priority=None, urgency="high"))
    pagerduty.send(_event("incident.acknowledged", status="acknowledged"))
    pagerduty.send_fixture()
    pagerduty.send(_event("incident.resolved", status="resolved"))
    assert drain() == 0
    case = _cases(app)[INCIDENT]
    assert case["severity"] == "error"  # set when opened: urgency high, no priority yet
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")
    assert case["events"] == ["case.opened", "case.updated", "case.updated", "case.closed"]

    pagerduty.send(_event("incident.reopened", status="triggered"))
    assert drain() == 0
    case = _cases(app)[INCIDENT]
    assert case["status"] == "open" and case["events"][-1] == "case.reopened"
    assert case["deliveries"] == 5
    outcomes = [d.outcome for d in _deliveries(app)]
    assert outcomes[0] == "pagerduty.open: opened a case"
    assert outcomes[3] == "pagerduty.close: closed the case (auto)"
    assert outcomes[4] == "pagerduty.open: reopened the case"


@BOTH_DATABASES
def test_redelivery_answers_200_and_is_processed_once(app, pagerduty, drain):
    assert pagerduty.send_fixture(delivery_id="wh-1").status_code == 202
    again = pagerduty.send_fixture(delivery_id="wh-1")
    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert _queued(app) == 1
    assert drain() == 0
    with app.app_context():
        delivery_pk = db.session.scalar(db.select(Delivery.id))
        assert processing.process_delivery(delivery_pk) == "already processed"
    assert _cases(app)[INCIDENT]["deliveries"] == 1


def test_two_deliveries_about_one_incident_make_one_case(app, pagerduty, drain):
    pagerduty.send_fixture()
    pagerduty.send(_event("incident.escalated"))
    assert drain() == 0
    assert list(_cases(app)) == [INCIDENT]
    assert _cases(app)[INCIDENT]["deliveries"] == 2


def test_event_id_is_the_delivery_id_without_x_webhook_id(app, pagerduty):
    response = pagerduty.send(
        (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes(), headers={"X-Webhook-Id": None}
    )
    assert response.status_code == 202
    assert response.json == {"delivery_id": "01BWDWL3NYY7LUFPZCC28QUCMK"}
    no_id = fixture()
    del no_id["event"]["id"]
    response = pagerduty.send(no_id, headers={"X-Webhook-Id": None})
    assert response.status_code == 400
    assert "X-Webhook-Id" in response.json["detail"]


def test_annotation_lands_on_the_incident_case(app, pagerduty, drain):
    pagerduty.send_fixture()
    note = {
        "event": {
            "id": "01C",
            "event_type": "incident.annotated",
            "agent": {"summary": "Tenex Engineer"},
            "data": {
                "incident": {
                    "id": INCIDENT,
                    "type": "incident_reference",
                    "summary": "A little bump in the road",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                },
                "content": "Rolled back the deploy",
                "type": "incident_note",
            },
        }
    }
    pagerduty.send(note)
    assert drain() == 0
    case = _cases(app)[INCIDENT]
    assert case["events"] == ["case.opened", "case.updated"]
    assert case["title"] == "A little bump in the road"
    with app.app_context():
        summaries = [e.payload["summary"] for e in db.session.scalars(db.select(CaseEvent))]
    assert "Tenex Engineer added a note: Rolled back the deploy" in summaries


def test_ping_is_answered_at_once_and_opens_nothing(app, pagerduty, drain):
    ping = {
        "event": {
            "id": "01PING",
            "event_type": "pagey.ping",
            "resource_type": "pagey",
            "occurred_at": "2021-12-08T22:10:16.017Z",
            "agent": None,
            "client": None,
            "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
        }
    }
    response = pagerduty.send(ping, delivery_id="ping-1")
    assert response.status_code == 200
    assert response.json == {"delivery_id": "ping-1", "detail": "pong"}
    assert _queued(app) == 0
    assert drain() == 0
    [stored] = _deliveries(app)
    assert (stored.event_type, stored.status) == ("pagey.ping", "processed")
    assert _cases(app) == {}


# --- refusals and rotation ------------------------------------------------------------------


def _assert_refused(app, drain, response, check: str) -> None:
    assert response.status_code == 401
    assert set(response.json) == {"error", "detail"}
    assert response.json["error"] == check
    assert "X-PagerDuty-Signature" in response.json["detail"]
    assert _queued(app) == 0
    assert drain() == 0
    [stored] = _deliveries(app)
    assert stored.verdict == "unauthorized" and stored.delivery_id is None
    assert _cases(app) == {}


def test_rotation_any_one_valid_signature_is_accepted(app, pagerduty, drain):
    body = (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes()
    old, new = v1("the old secret", body), v1(pagerduty.secret, body)
    for header in (f"{old},{new}", f"{new},{old}", f"{old}, {new}", f"v2=abc,{new}"):
        response = pagerduty.send(body, headers={"X-PagerDuty-Signature": header})
        assert response.status_code == 202, header
    assert drain() == 0
    assert _cases(app)[INCIDENT]["deliveries"] == 4


@pytest.mark.parametrize(
    ("header", "check"),
    [
        (None, "missing_header"),
        ("", "missing_header"),
        ("two-wrong", "bad_signature"),
        ("v1=" + "0" * 64, "bad_signature"),
        ("v2=" + "0" * 64, "bad_signature"),  # no v1 signature at all
        ("sha256=" + "0" * 64, "bad_signature"),
    ],
)
def test_refused_signature_is_401_and_nothing_is_queued(app, pagerduty, drain, header, check):
    body = (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes()
    if header == "two-wrong":
        header = f"{v1('old one', body)},{v1('older one', body)}"
    response = pagerduty.send(body, headers={"X-PagerDuty-Signature": header})
    _assert_refused(app, drain, response, check)


def test_null_and_odd_fields_never_crash_processing(app, pagerduty, drain):
    payloads = [
        {"event": {"event_type": "incident.triggered", "data": None}},
        {"event": {"event_type": "incident.triggered", "data": {"id": "P1", "type": "incident"}}},
        {
            "event": {
                "event_type": "incident.annotated",
                "data": {"incident": None, "content": None},
                "agent": None,
            }
        },
        {
            "event": {
                "event_type": "incident.priority_updated",
                "data": {"id": "P2", "type": "incident", "priority": None, "urgency": None},
            }
        },
        {"event": None},
        {},
    ]
    for payload in payloads:
        assert pagerduty.send(payload).status_code == 202
    assert drain() == 0
    with app.app_context():
        titles = sorted(db.session.scalars(db.select(Case.title)).all())
        statuses = {d.status for d in db.session.scalars(db.select(Delivery)).all()}
    assert "PagerDuty incident P1" in titles
    assert statuses == {"processed"}


# --- the provider module on its own -----------------------------------------------------


def test_go_pagerduty_vector_is_accepted():
    body = (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes()
    PagerDuty().verify(GO_PAGERDUTY_SECRET, {"X-PagerDuty-Signature": GO_PAGERDUTY_SIGNATURE}, body)


def test_go_pagerduty_mismatch_vector_is_refused():
    body = (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes()
    mismatch = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5"
    with pytest.raises(VerificationError) as refused:
        PagerDuty().verify(GO_PAGERDUTY_SECRET, {"X-PagerDuty-Signature": mismatch}, body)
    assert refused.value.check == "bad_signature"
    both = f"{mismatch},{GO_PAGERDUTY_SIGNATURE}"
    PagerDuty().verify(GO_PAGERDUTY_SECRET, {"X-PagerDuty-Signature": both}, body)


def test_one_changed_byte_is_refused():
    body = (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes()
    with pytest.raises(VerificationError, match="X-PagerDuty-Signature"):
        PagerDuty().verify(
            GO_PAGERDUTY_SECRET,
            {"X-PagerDuty-Signature": GO_PAGERDUTY_SIGNATURE},
            body.replace(b"P1", b"P2"),
        )


def test_delivery_id_event_type_and_severity():
    payload = fixture()
    assert PagerDuty().delivery_id({"X-Webhook-Id": "wh"}, payload) == "wh"
    assert PagerDuty().delivery_id({}, payload) == "01BWDWL3NYY7LUFPZCC28QUCMK"
    with pytest.raises(PayloadError):
        PagerDuty().delivery_id({}, {"event": {"id": None}})
    assert PagerDuty().event_type({}, payload) == "incident.priority_updated"
    assert PagerDuty().event_type({}, None) == "unknown"
    low = copy.deepcopy(payload)
    low["event"]["data"].update(priority=None, urgency="low")
    assert PagerDuty().case_facts("incident.triggered", low).severity == "warning"
    high = copy.deepcopy(payload)
    high["event"]["data"]["priority"]["summary"] = "P3"
    assert PagerDuty().case_facts("incident.triggered", high).severity == "error"
    assert PagerDuty().immediate_answer("pagey.ping", {}) == {"detail": "pong"}
    assert PagerDuty().immediate_answer("incident.triggered", payload) is None
