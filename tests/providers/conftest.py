"""What every provider test file shares: a sender that posts raw bytes to a new endpoint through
the real route, and what the tests read back (cases, deliveries, the queue) and assert of it."""

from __future__ import annotations

import json
from datetime import datetime

from app import clock
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.webhooks import processing
from app.webhooks.cli import create_endpoint
from app.webhooks.inbox import pending_deliveries
from app.webhooks.models import Delivery

# --- sending ----------------------------------------------------------------------------------


def body_of(payload: dict | bytes) -> bytes:
    """``payload`` as sent: bytes as they are (a fixture byte for byte), anything else as JSON."""
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def with_headers(headers: dict, changes: dict | None) -> dict:
    """``headers`` with ``changes`` applied: a None value removes the header."""
    changed = dict(headers)
    for name, value in (changes or {}).items():
        if value is None:
            changed.pop(name, None)
        else:
            changed[name] = value
    return changed


class Sender:
    """Posts to one new endpoint of ``provider`` (named ``source``) through the real route.

    A subclass per provider adds ``send``, building the headers that provider sends; with
    ``frozen_at`` set, the clock reads that time while a request is handled.
    """

    provider: str
    source: str
    frozen_at: datetime | None = None

    def __init__(self, app, client, secret: str | None = None, settings: dict | None = None):
        with app.app_context():
            endpoint, self.secret = create_endpoint(self.provider, self.source, secret)
            if settings is not None:
                endpoint.settings = settings
                db.session.commit()
            self.endpoint_id, self.path = endpoint.id, endpoint.path
        self.app, self.client = app, client

    def post(self, body: bytes, headers: dict, changes: dict | None = None):
        """POST ``body`` as it is with ``headers`` (``changes`` applied, see ``with_headers``)."""
        sent = with_headers(headers, changes)
        if self.frozen_at is None:
            return self.client.post(self.path, data=body, headers=sent)
        with clock.frozen_at(self.frozen_at):
            return self.client.post(self.path, data=body, headers=sent)


# --- reading back -----------------------------------------------------------------------------

#: What ``case_rows`` and ``cases`` can say about a case.
CASE_FIELDS = {
    "title": lambda case: case.title,
    "status": lambda case: case.status,
    "closed_reason": lambda case: case.closed_reason,
    "severity": lambda case: case.severity,
    "source_url": lambda case: case.source_url,
    "deliveries": lambda case: case.delivery_count,
    "events": lambda case: [event.type for event in case.events],
}


def case_rows(app, *fields: str) -> dict:
    """``{dedup_key: (field, ...)}`` for every case, ``fields`` named as in ``CASE_FIELDS``."""
    with app.app_context():
        return {
            case.dedup_key: tuple(CASE_FIELDS[field](case) for field in fields)
            for case in db.session.scalars(db.select(Case)).all()
        }


def cases_by_key(app) -> dict:
    """``{dedup_key: {field: value}}`` for every case, with every field of ``CASE_FIELDS``."""
    return {
        key: dict(zip(CASE_FIELDS, row, strict=True))
        for key, row in case_rows(app, *CASE_FIELDS).items()
    }


def case_titles(app) -> list[str]:
    """Every case's title, sorted."""
    with app.app_context():
        return sorted(db.session.scalars(db.select(Case.title)).all())


def stored_deliveries(app) -> list[Delivery]:
    """Every stored delivery, in the order received."""
    with app.app_context():
        return db.session.scalars(db.select(Delivery).order_by(Delivery.received_at)).all()


def delivery_statuses(app) -> set[str]:
    """The statuses the stored deliveries are in."""
    return {delivery.status for delivery in stored_deliveries(app)}


def summaries(app) -> list[str]:
    """Every case event's timeline summary, oldest first."""
    with app.app_context():
        events = db.session.scalars(db.select(CaseEvent).order_by(CaseEvent.id)).all()
        return [event.payload["summary"] for event in events]


def queued(app) -> int:
    """Deliveries waiting for the worker in this test's inbox."""
    with app.app_context():
        return pending_deliveries()


# --- asserting --------------------------------------------------------------------------------


def assert_401(response, check: str, *phrases: str) -> None:
    """A refusal: 401 with only ``error`` (``check``) and ``detail`` (saying every phrase)."""
    assert response.status_code == 401
    assert set(response.json) == {"error", "detail"}
    assert response.json["error"] == check
    for phrase in phrases:
        assert phrase in response.json["detail"]


def assert_refused(app, drain, response, check: str, *phrases: str) -> list[Delivery]:
    """``assert_401``, and nothing was queued, processed or opened; returns the stored
    deliveries for the caller's own checks of them."""
    assert_401(response, check, *phrases)
    assert queued(app) == 0
    assert drain() == 0
    assert case_rows(app) == {}
    return stored_deliveries(app)


def assert_duplicate(response) -> None:
    """The route recognised a delivery it already has: 200, marked duplicate."""
    assert response.status_code == 200
    assert response.json["duplicate"] is True


def assert_processed_once(app) -> None:
    """Running any stored delivery again does nothing: each was processed already."""
    with app.app_context():
        for delivery_pk in db.session.scalars(db.select(Delivery.id)).all():
            assert processing.process_delivery(delivery_pk) == "already processed"
