"""PagerDuty v3: every fixture through the real route and a real RQ worker, on SQLite and
Postgres; the signature check (with secret rotation) and what it refuses."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid

import pytest

from app.events.models import CaseEvent
from app.extensions import db
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.providers.pagerduty import PagerDuty
from tests.conftest import BOTH_DATABASES, FIXTURES
from tests.providers.conftest import (
    Sender,
    assert_duplicate,
    assert_processed_once,
    assert_refused,
    body_of,
    case_titles,
    cases_by_key,
    delivery_statuses,
    queued,
    stored_deliveries,
    summaries,
)

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


class PagerDutySender(Sender):
    """Posts signed PagerDuty v3 deliveries to one endpoint through the real route."""

    provider, source = "pagerduty", "API Service"

    def send(self, payload: dict | bytes, delivery_id: str | None = None, headers=None):
        """POST ``payload`` signed; ``headers`` override (a None value removes the header)."""
        body = body_of(payload)
        sent = {
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-Webhook-Id": delivery_id or str(uuid.uuid4()),
            "X-Webhook-Subscription": "PSFWQ6N",
            "X-PagerDuty-Signature": v1(self.secret, body),
        }
        return self.post(body, sent, headers)

    def send_fixture(self, name: str = PRIORITY_UPDATED, delivery_id: str | None = None):
        """Send ``shared/fixtures/pagerduty/<name>.json`` as it is (raw bytes)."""
        return self.send((PAGERDUTY / f"{name}.json").read_bytes(), delivery_id)


@pytest.fixture
def pagerduty(app, client):
    return PagerDutySender(app, client)


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
    assert cases_by_key(app) == {
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
    [delivery] = stored_deliveries(app)
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
    case = cases_by_key(app)[INCIDENT]
    assert case["severity"] == "error"  # set when opened: urgency high, no priority yet
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")
    assert case["events"] == ["case.opened", "case.updated", "case.updated", "case.closed"]

    pagerduty.send(_event("incident.reopened", status="triggered"))
    assert drain() == 0
    case = cases_by_key(app)[INCIDENT]
    assert case["status"] == "open" and case["events"][-1] == "case.reopened"
    assert case["deliveries"] == 5
    outcomes = [d.outcome for d in stored_deliveries(app)]
    assert outcomes[0] == "pagerduty.open: opened a case"
    assert outcomes[3] == "pagerduty.close: closed the case (auto)"
    assert outcomes[4] == "pagerduty.open: reopened the case"


@BOTH_DATABASES
def test_redelivery_answers_200_and_is_processed_once(app, pagerduty, drain):
    assert pagerduty.send_fixture(delivery_id="wh-1").status_code == 202
    assert_duplicate(pagerduty.send_fixture(delivery_id="wh-1"))
    assert queued(app) == 1
    assert drain() == 0
    assert_processed_once(app)
    assert cases_by_key(app)[INCIDENT]["deliveries"] == 1


def test_two_deliveries_about_one_incident_make_one_case(app, pagerduty, drain):
    pagerduty.send_fixture()
    pagerduty.send(_event("incident.escalated"))
    assert drain() == 0
    assert list(cases_by_key(app)) == [INCIDENT]
    assert cases_by_key(app)[INCIDENT]["deliveries"] == 2


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
    case = cases_by_key(app)[INCIDENT]
    assert case["events"] == ["case.opened", "case.updated"]
    assert case["title"] == "A little bump in the road"
    assert "Tenex Engineer added a note: Rolled back the deploy" in summaries(app)


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
    assert queued(app) == 0
    assert drain() == 0
    [stored] = stored_deliveries(app)
    assert (stored.event_type, stored.status) == ("pagey.ping", "processed")
    assert cases_by_key(app) == {}


# --- refusals and rotation ------------------------------------------------------------------


def test_rotation_any_one_valid_signature_is_accepted(app, pagerduty, drain):
    body = (PAGERDUTY / f"{PRIORITY_UPDATED}.json").read_bytes()
    old, new = v1("the old secret", body), v1(pagerduty.secret, body)
    for header in (f"{old},{new}", f"{new},{old}", f"{old}, {new}", f"v2=abc,{new}"):
        response = pagerduty.send(body, headers={"X-PagerDuty-Signature": header})
        assert response.status_code == 202, header
    assert drain() == 0
    assert cases_by_key(app)[INCIDENT]["deliveries"] == 4


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
    [stored] = assert_refused(app, drain, response, check, "X-PagerDuty-Signature")
    assert stored.verdict == "unauthorized" and stored.delivery_id is None


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
    assert "PagerDuty incident P1" in case_titles(app)
    assert delivery_statuses(app) == {"processed"}


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
