"""Standard Webhooks through the real route and a real RQ worker, on SQLite and Postgres (no
fixture folder: the payloads are built here); the refusals; the specification's test vector."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from app import clock
from app.cases.models import Case
from app.extensions import db
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import VerificationError
from app.webhooks.providers.standard import Standard, sign
from tests.conftest import BOTH_DATABASES
from tests.providers.conftest import (
    Sender,
    assert_duplicate,
    assert_refused,
    body_of,
    case_rows,
    delivery_statuses,
    stored_deliveries,
    with_headers,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SECRET = "whsec_" + base64.b64encode(b"casehook standard webhooks test key").decode()

# The Standard Webhooks specification's test vector, used by the standardwebhooks package's
# own tests (checked here against the installed package's Webhook.sign as well).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_HEADERS = {
    "webhook-id": VECTOR_ID,
    "webhook-timestamp": str(VECTOR_TS),
    "webhook-signature": VECTOR_SIGNATURE,
}


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """``v1,<base64>`` computed independently of the package, as the specification says."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class StandardSender(Sender):
    """Posts Standard Webhooks messages to one endpoint, with the clock frozen at NOW."""

    provider, source, frozen_at = "standard", "Billing", NOW

    def __init__(self, app, client):
        super().__init__(app, client, SECRET)
        self.sent = 0

    def headers(self, body: bytes, msg_id: str, timestamp: int | str = NOW_TS, secret=None):
        return {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(secret or self.secret, msg_id, timestamp, body),
        }

    def send(self, payload: dict | bytes, msg_id: str | None = None, timestamp=NOW_TS):
        self.sent += 1
        body = body_of(payload)
        return self.post(body, self.headers(body, msg_id or f"msg_{self.sent}", timestamp))


@pytest.fixture
def standard(app, client):
    return StandardSender(app, client)


def incident(kind: str, **data) -> dict:
    """A message in the specification's shape: type, timestamp, data."""
    return {
        "type": f"incident.{kind}",
        "timestamp": "2024-05-01T12:00:00Z",
        "data": {
            "id": "inc_42",
            "title": "Checkout answers 500",
            "severity": "critical",
            "url": "https://status.example.com/incidents/inc_42",
            **data,
        },
    }


def _cases(app) -> dict:
    return case_rows(app, "status", "closed_reason", "severity", "title", "events")


@BOTH_DATABASES
def test_created_updated_resolved_is_one_case_opened_updated_closed(app, standard, drain):
    assert standard.send(incident("created"), "msg_created").status_code == 202
    assert drain() == 0
    title = "Checkout answers 500"
    assert _cases(app) == {"inc_42": ("open", None, "critical", title, ["case.opened"])}
    with app.app_context():
        case = db.session.scalars(db.select(Case)).one()
        assert case.provider == "standard"
        assert case.source_url == "https://status.example.com/incidents/inc_42"
        assert case.events[0].payload["summary"] == "incident.created (inc_42)"

    updated = incident("updated", title="Checkout answers 500 in eu-west")
    assert standard.send(updated, "msg_updated").status_code == 202
    assert standard.send(incident("resolved"), "msg_resolved").status_code == 202
    assert drain() == 0
    assert _cases(app) == {
        "inc_42": (
            "closed",
            "auto",
            "critical",
            "Checkout answers 500 in eu-west",
            ["case.opened", "case.updated", "case.closed"],
        )
    }
    outcomes = {d.delivery_id: (d.event_type, d.status, d.outcome) for d in stored_deliveries(app)}
    assert outcomes == {
        "msg_created": ("incident.created", "processed", "standard.open: opened a case"),
        "msg_updated": ("incident.updated", "processed", "standard.update: updated the case"),
        "msg_resolved": (
            "incident.resolved",
            "processed",
            "standard.close: closed the case (auto)",
        ),
    }

    # Triggered again after the resolve: the case reopens.
    assert standard.send(incident("triggered"), "msg_again").status_code == 202
    assert drain() == 0
    assert _cases(app)["inc_42"][0] == "open"
    assert _cases(app)["inc_42"][4][-1] == "case.reopened"


@BOTH_DATABASES
def test_dedup_key_title_and_type_fallbacks(app, standard, drain):
    messages = [
        # An explicit dedup_key wins over data.id; the body title over data.title.
        {
            "type": "alert.firing",
            "dedup_key": "db-primary-disk",
            "title": "Disk 95% full",
            "data": {"id": "evt_1", "title": "ignored", "severity": "warning"},
        },
        {"type": "alert.firing", "dedup_key": "db-primary-disk", "data": {"id": "evt_2"}},
        # No title anywhere: the type and data.id; no severity: info.
        {"type": "order.opened", "data": {"id": 1001}},
        # No dedup key at all: each message its own case.
        {"type": "ticket.opened", "data": {"title": "Printer on fire"}},
        {"type": "ticket.opened", "data": {"title": "Printer on fire"}},
        # Recorded only: no built-in command for these.
        {"type": "invoice.paid", "data": {"id": "in_1"}},
        {"data": {"id": "in_2"}},
    ]
    for message in messages:
        assert standard.send(message).status_code == 202
    assert drain() == 0
    with app.app_context():
        rows = sorted(
            (c.dedup_key or "", c.title, c.severity, c.delivery_count)
            for c in db.session.scalars(db.select(Case)).all()
        )
    assert rows == [
        ("", "Printer on fire", "info", 1),
        ("", "Printer on fire", "info", 1),
        ("1001", "order.opened (1001)", "info", 1),
        # The second message (no title of its own) retitles the case with its type and id;
        # the severity stays what the case opened with (cases.service refreshes titles only).
        ("db-primary-disk", "alert.firing (evt_2)", "warning", 2),
    ]
    recorded = {
        d.event_type for d in stored_deliveries(app) if "recorded only" in (d.outcome or "")
    }
    assert recorded == {"invoice.paid", "unknown"}


@BOTH_DATABASES
def test_redelivery_with_the_same_webhook_id_is_processed_once(app, standard, drain):
    assert standard.send(incident("created"), "msg_same").status_code == 202
    # A retry: same id and body, a later timestamp and so another signature.
    assert_duplicate(standard.send(incident("created"), "msg_same", timestamp=NOW_TS + 30))
    assert drain() == 0
    assert len(stored_deliveries(app)) == 1
    assert _cases(app)["inc_42"][4] == ["case.opened"]


def test_any_one_of_several_signatures_may_match(app, standard, drain):
    body = json.dumps(incident("created")).encode()
    right = standard.headers(body, "msg_rotated")
    wrong = standard.headers(body, "msg_rotated", secret="whsec_" + "A" * 32)
    rotated = {
        **right,
        "webhook-signature": " ".join(
            [wrong["webhook-signature"], "v1a,xyz", "garbage", right["webhook-signature"]]
        ),
    }
    assert standard.post(body, rotated).status_code == 202
    assert drain() == 0
    assert _cases(app)["inc_42"][0] == "open"


REFUSALS = {
    "missing webhook-id": (
        lambda s, body: with_headers(s.headers(body, "msg_x"), {"webhook-id": None}),
        "missing_header",
        ["webhook-id"],
    ),
    "missing webhook-timestamp": (
        lambda s, body: with_headers(s.headers(body, "msg_x"), {"webhook-timestamp": None}),
        "missing_header",
        ["webhook-timestamp"],
    ),
    "missing webhook-signature": (
        lambda s, body: with_headers(s.headers(body, "msg_x"), {"webhook-signature": None}),
        "missing_header",
        ["webhook-signature"],
    ),
    "another secret": (
        lambda s, body: s.headers(body, "msg_x", secret="whsec_" + "B" * 32),
        "bad_signature",
        ["webhook-signature"],
    ),
    "changed body": (
        lambda s, body: s.headers(body + b" ", "msg_x"),
        "bad_signature",
        ["webhook-signature"],
    ),
    "signature of another id": (
        lambda s, body: {
            **s.headers(body, "msg_x"),
            "webhook-signature": s.headers(body, "msg_y")["webhook-signature"],
        },
        "bad_signature",
        ["webhook-signature"],
    ),
    "only a v2 signature": (
        lambda s, body: {
            **s.headers(body, "msg_x"),
            "webhook-signature": s.headers(body, "msg_x")["webhook-signature"].replace(
                "v1,", "v2,"
            ),
        },
        "bad_signature",
        ["no v1 signature"],
    ),
    "stale timestamp": (
        lambda s, body: s.headers(body, "msg_x", NOW_TS - 301),
        "stale_timestamp",
        ["301 s old", "skew -301 s", "webhook-timestamp"],
    ),
    "future timestamp": (
        lambda s, body: s.headers(body, "msg_x", NOW_TS + 3600),
        "stale_timestamp",
        ["3600 s in the future", "skew +3600 s"],
    ),
    "timestamp in milliseconds": (
        lambda s, body: s.headers(body, "msg_x", NOW_TS * 1000),
        "stale_timestamp",
        ["in the future"],
    ),
    "timestamp not a number": (
        lambda s, body: s.headers(body, "msg_x", "soon"),
        "stale_timestamp",
        ["'soon'", "not a Unix time"],
    ),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refusals_answer_401_and_process_nothing(app, standard, drain, case):
    make_headers, check, phrases = REFUSALS[case]
    body = json.dumps(incident("created")).encode()
    response = standard.post(body, make_headers(standard, body))
    [stored] = assert_refused(app, drain, response, check, *phrases)
    assert (stored.verdict, stored.status, stored.delivery_id) == ("unauthorized", "refused", None)


@pytest.mark.parametrize("skew", [-300, 300])
def test_timestamps_exactly_five_minutes_off_are_accepted(app, standard, skew):
    assert standard.send(incident("created"), timestamp=NOW_TS + skew).status_code == 202


def test_null_and_odd_fields_never_crash_processing(app, standard, drain):
    messages = [
        {"type": "thing.created", "data": None},
        {"type": "thing.created", "data": {"id": None, "title": None, "severity": None}},
        {"type": None, "title": "  ", "data": []},
        {"type": "thing.created", "dedup_key": 5, "title": 7, "url": "javascript:alert(1)"},
        {"type": "thing.resolved", "data": {"id": "missing"}},
        {"type": "x" * 500 + ".created"},
    ]
    for message in messages:
        assert standard.send(message).status_code == 202
    assert drain() == 0
    assert delivery_statuses(app) == {"processed"}
    with app.app_context():
        cases = db.session.scalars(db.select(Case)).all()
        assert ("5", "7", None) in {(c.dedup_key, c.title, c.source_url) for c in cases}
        assert {c.title for c in cases} >= {"thing.created"}


# --- verify() without HTTP ---------------------------------------------------------------------


def test_the_specification_vector_is_accepted_at_its_time():
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    assert standard_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == (
        VECTOR_SIGNATURE
    )
    with clock.frozen_at(datetime.fromtimestamp(VECTOR_TS, UTC)):
        Standard().verify(VECTOR_SECRET, VECTOR_HEADERS, VECTOR_BODY)
        # The secret without its prefix, and header names in any case.
        Standard().verify(
            VECTOR_SECRET.removeprefix("whsec_"),
            {k.title(): v for k, v in VECTOR_HEADERS.items()},
            VECTOR_BODY,
        )


def test_the_vector_checked_at_the_real_time_is_stale():
    with pytest.raises(VerificationError) as refused:
        Standard().verify(VECTOR_SECRET, VECTOR_HEADERS, VECTOR_BODY)
    assert refused.value.check == "stale_timestamp"
    assert "s old" in refused.value.detail


@pytest.mark.parametrize(
    ("secret", "body", "changes", "check", "phrase"),
    [
        (VECTOR_SECRET, b'{"test": 2432232315}', {}, "bad_signature", "webhook-signature"),
        ("whsec_" + "C" * 32, VECTOR_BODY, {}, "bad_signature", "webhook-signature"),
        (VECTOR_SECRET, VECTOR_BODY, {"webhook-id": "msg_other"}, "bad_signature", "v1"),
        (VECTOR_SECRET, VECTOR_BODY, {"webhook-signature": "v1,***"}, "bad_signature", "v1"),
        (VECTOR_SECRET, VECTOR_BODY, {"webhook-signature": "v1,"}, "bad_signature", "v1"),
        (VECTOR_SECRET, VECTOR_BODY, {"webhook-id": "  "}, "missing_header", "webhook-id"),
        (VECTOR_SECRET, b"\xff\xfe{}", {}, "bad_signature", "UTF-8"),
        ("whsec_", VECTOR_BODY, {}, "bad_signature", "secret"),
        ("whsec_a", VECTOR_BODY, {}, "bad_signature", "secret"),
    ],
)
def test_verify_refuses(secret, body, changes, check, phrase):
    headers = {**VECTOR_HEADERS, **changes}
    with (
        clock.frozen_at(datetime.fromtimestamp(VECTOR_TS, UTC)),
        pytest.raises(VerificationError) as refused,
    ):
        Standard().verify(secret, headers, body)
    assert refused.value.check == check
    assert phrase in refused.value.detail


def test_ids_event_types_and_facts():
    provider = get_provider("standard")
    assert isinstance(provider, Standard)
    assert provider.delivery_id({"Webhook-Id": " msg_1 "}, {}) == "msg_1"
    assert provider.event_type({}, {"type": "invoice.paid"}) == "invoice.paid"
    assert provider.event_type({}, {"type": None}) == "unknown"
    assert provider.event_type({}, None) == "unknown"
    facts = provider.case_facts("incident.created", incident("created"))
    assert (facts.dedup_key, facts.title, facts.severity) == (
        "inc_42",
        "Checkout answers 500",
        "critical",
    )
    empty = provider.case_facts("unknown", None)
    assert (empty.dedup_key, empty.title, empty.severity, empty.source_url) == (
        None,
        "unknown",
        "info",
        None,
    )
