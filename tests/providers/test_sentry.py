"""Sentry: every fixture through the real route and a real RQ worker, on SQLite and Postgres;
the signature and freshness checks and what they refuse."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.webhooks.providers.base import VerificationError
from app.webhooks.providers.sentry import Sentry
from tests.conftest import BOTH_DATABASES, FIXTURES
from tests.providers.conftest import (
    Sender,
    assert_duplicate,
    assert_processed_once,
    assert_refused,
    case_titles,
    cases_by_key,
    delivery_statuses,
    queued,
    stored_deliveries,
    summaries,
)

SENTRY = FIXTURES / "sentry"
ISSUE_ID = "1170820242"
TITLE = "ReferenceError: blooopy is not defined — ?(runner)"
MOMENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def fixture(name: str = "issue.created") -> dict:
    return json.loads((SENTRY / f"{name}.json").read_bytes())


def compact(payload: dict) -> bytes:
    """Serialised the way Sentry serialises what it signs."""
    return json.dumps(payload, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """``Sentry-Hook-Signature`` as Sentry documents it, computed here independently."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SentrySender(Sender):
    """Posts signed Sentry integration webhooks to one endpoint through the real route."""

    provider, source = "sentry", "front-end"

    def send(
        self,
        payload: dict | bytes,
        resource: str = "issue",
        request_id: str | None = None,
        headers=None,
    ):
        """POST ``payload`` signed and stamped now (``clock.now()``); ``headers`` override (a
        None value removes the header)."""
        body = payload if isinstance(payload, bytes) else compact(payload)
        sent = {
            "Content-Type": "application/json",
            "Request-ID": request_id or str(uuid.uuid4()),
            "Sentry-Hook-Resource": resource,
            "Sentry-Hook-Timestamp": str(int(clock.now().timestamp())),
            "Sentry-Hook-Signature": signature(self.secret, body),
        }
        return self.post(body, sent, headers)

    def send_fixture(self, name: str = "issue.created", request_id: str | None = None):
        """Send ``shared/fixtures/sentry/<name>.json`` as it is (raw bytes)."""
        return self.send((SENTRY / f"{name}.json").read_bytes(), request_id=request_id)


@pytest.fixture
def sentry(app, client):
    return SentrySender(app, client)


def _issue(action: str, **issue) -> dict:
    payload = fixture()
    payload["action"] = action
    payload["data"]["issue"].update(issue)
    return payload


# --- the real route and a real worker ---------------------------------------------------


@BOTH_DATABASES
def test_every_fixture_becomes_the_right_case(app, sentry, drain):
    assert sentry.send_fixture().status_code == 202
    assert drain() == 0
    assert cases_by_key(app) == {
        ISSUE_ID: {
            "title": TITLE,
            "status": "open",
            "closed_reason": None,
            "severity": "error",
            "source_url": None,  # the docs example has neither web_url nor a permalink
            "deliveries": 1,
            "events": ["case.opened"],
        }
    }
    [delivery] = stored_deliveries(app)
    assert (delivery.event_type, delivery.status) == ("issue.created", "processed")
    assert delivery.outcome == "sentry.open: opened a case"


@BOTH_DATABASES
def test_resolved_closes_and_unresolved_reopens_one_case(app, sentry, drain):
    sentry.send_fixture()
    sentry.send(_issue("assigned", assignedTo={"type": "user", "name": "Ada", "id": "1"}))
    sentry.send(_issue("ignored", status="ignored"))
    sentry.send(_issue("resolved", status="resolved"))
    assert drain() == 0
    case = cases_by_key(app)[ISSUE_ID]
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")
    assert case["events"] == ["case.opened", "case.updated", "case.updated", "case.closed"]

    sentry.send(_issue("unresolved", status="unresolved"))
    assert drain() == 0
    case = cases_by_key(app)[ISSUE_ID]
    assert case["status"] == "open"
    assert case["events"][-1] == "case.reopened"
    assert case["deliveries"] == 5
    assert summaries(app)[1] == "Sentry assigned Ada"


@BOTH_DATABASES
def test_redelivery_answers_200_and_is_processed_once(app, sentry, drain):
    assert sentry.send_fixture(request_id="req-1").status_code == 202
    assert_duplicate(sentry.send_fixture(request_id="req-1"))
    # Without Request-ID the body names the delivery: a retry of the same body dedupes.
    body = (SENTRY / "issue.created.json").read_bytes()
    expected = "sha256:" + hashlib.sha256(body).hexdigest()
    first = sentry.send(body, headers={"Request-ID": None})
    assert first.status_code == 202 and first.json == {"delivery_id": expected}
    assert_duplicate(sentry.send(body, headers={"Request-ID": None}))
    assert queued(app) == 2
    assert drain() == 0
    assert_processed_once(app)
    case = cases_by_key(app)[ISSUE_ID]
    assert case["deliveries"] == 2  # two distinct deliveries (req-1, the unnamed one)
    assert case["events"] == ["case.opened", "case.updated"]


def test_two_deliveries_about_one_issue_make_one_case(app, sentry, drain):
    sentry.send_fixture()
    sentry.send_fixture()
    assert drain() == 0
    assert list(cases_by_key(app)) == [ISSUE_ID]


def test_level_link_and_title_follow_the_issue(app, sentry, drain):
    fatal = _issue("created", id="42", level="fatal", culprit=None, web_url="https://s.io/i/42")
    sentry.send(fatal)
    linked = _issue("created", id="43", level="warning", permalink="https://s.io/p/43")
    sentry.send(linked)
    sentry.send(_issue("created", id="44", level="info"))
    assert drain() == 0
    cases = cases_by_key(app)
    assert cases["42"]["severity"] == "critical"
    assert cases["42"]["title"] == "ReferenceError: blooopy is not defined"
    assert cases["42"]["source_url"] == "https://s.io/i/42"
    assert (cases["43"]["severity"], cases["43"]["source_url"]) == ("warning", "https://s.io/p/43")
    assert cases["44"]["severity"] == "info"


def test_comments_and_alerts_land_on_the_issue_case(app, sentry, drain):
    sentry.send_fixture()
    comment = {
        "action": "created",
        "actor": {"type": "user", "name": "Ada"},
        "data": {"comment_id": "9", "issue_id": int(ISSUE_ID), "comment": "Seen on Safari only"},
    }
    sentry.send(comment, resource="comment")
    alert = {
        "action": "triggered",
        "data": {
            "event": {"issue_id": ISSUE_ID, "title": "ReferenceError", "level": "error"},
            "triggered_rule": "Page on new errors",
        },
    }
    sentry.send(alert, resource="event_alert")
    assert drain() == 0
    case = cases_by_key(app)[ISSUE_ID]
    assert case["events"] == ["case.opened", "case.updated", "case.updated"]
    assert summaries(app)[1:] == [
        "Ada commented: Seen on Safari only",
        "Alert rule 'Page on new errors' fired",
    ]


def test_metric_alert_opens_and_resolves(app, sentry, drain):
    critical = {
        "action": "critical",
        "data": {
            "metric_alert": {"id": "77", "alert_rule": {"name": "p95 latency"}},
            "description_title": "Critical: p95 latency above 2 s",
            "web_url": "https://sentry.io/organizations/o/alerts/rules/details/77/",
        },
    }
    sentry.send(critical, resource="metric_alert")
    resolved = copy.deepcopy(critical)
    resolved["action"] = "resolved"
    resolved["data"]["description_title"] = "Resolved: p95 latency above 2 s"
    sentry.send(resolved, resource="metric_alert")
    assert drain() == 0
    case = cases_by_key(app)["metric_alert:77"]
    assert case["severity"] == "critical"
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")


# --- refusals -----------------------------------------------------------------------------


def _assert_refused(app, drain, response, check: str, *words: str) -> None:
    stored = assert_refused(app, drain, response, check, *words)
    assert all(d.verdict == "unauthorized" and d.delivery_id is None for d in stored)


@pytest.mark.parametrize(
    ("offset", "words"),
    [(-301, ("301 s old",)), (301, ("301 s in the future",)), (-86400, ("86400 s old",))],
)
def test_stale_or_future_timestamp_is_401_with_the_skew(app, sentry, drain, offset, words):
    with clock.frozen_at(MOMENT):
        sent = MOMENT + timedelta(seconds=offset)
        response = sentry.send(
            (SENTRY / "issue.created.json").read_bytes(),
            headers={"Sentry-Hook-Timestamp": str(int(sent.timestamp()))},
        )
    _assert_refused(app, drain, response, "stale_timestamp", "Sentry-Hook-Timestamp", *words)


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamp_within_300_seconds_either_way_is_accepted(app, sentry, offset):
    with clock.frozen_at(MOMENT):
        sent = MOMENT + timedelta(seconds=offset)
        response = sentry.send(
            (SENTRY / "issue.created.json").read_bytes(),
            headers={"Sentry-Hook-Timestamp": str(int(sent.timestamp()))},
        )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("headers", "check", "header"),
    [
        ({"Sentry-Hook-Signature": None}, "missing_header", "Sentry-Hook-Signature"),
        ({"Sentry-Hook-Signature": "0" * 64}, "bad_signature", "Sentry-Hook-Signature"),
        ({"Sentry-Hook-Timestamp": None}, "missing_header", "Sentry-Hook-Timestamp"),
        ({"Sentry-Hook-Timestamp": "yesterday"}, "stale_timestamp", "Sentry-Hook-Timestamp"),
        ({"Sentry-Hook-Timestamp": "nan"}, "stale_timestamp", "Sentry-Hook-Timestamp"),
    ],
)
def test_refused_request_is_401_naming_the_header(app, sentry, drain, headers, check, header):
    response = sentry.send((SENTRY / "issue.created.json").read_bytes(), headers=headers)
    _assert_refused(app, drain, response, check, header)


def test_signature_over_re_serialised_json_is_refused(app, sentry, drain):
    raw = (SENTRY / "issue.created.json").read_bytes()
    pretty = json.dumps(json.loads(raw), indent=2).encode()
    response = sentry.post(
        pretty,
        {
            "Request-ID": "r",
            "Sentry-Hook-Resource": "issue",
            "Sentry-Hook-Timestamp": str(int(clock.now().timestamp())),
            "Sentry-Hook-Signature": signature(sentry.secret, raw),
        },
    )
    _assert_refused(app, drain, response, "bad_signature", "Sentry-Hook-Signature")


def test_null_and_odd_fields_never_crash_processing(app, sentry, drain):
    payloads = [
        ({"action": "created", "data": None}, "issue"),
        ({"action": "created", "data": {"issue": None}}, "issue"),
        (
            {"action": "created", "data": {"issue": {"id": 5, "title": None, "level": None}}},
            "issue",
        ),
        ({"action": "assigned", "data": {"issue": {"id": "5", "assignedTo": "x"}}}, "issue"),
        ({"action": "created", "data": {"comment": None}}, "comment"),
        ({"action": "critical", "data": {"metric_alert": None}}, "metric_alert"),
        ({"action": None}, "issue"),
        ({}, "unknown"),
    ]
    for payload, resource in payloads:
        assert sentry.send(payload, resource=resource).status_code == 202
    assert sentry.send({"action": "created"}, headers={"Sentry-Hook-Resource": None}).status_code
    assert drain() == 0
    assert "Sentry issue 5" in case_titles(app)
    assert delivery_statuses(app) == {"processed"}


# --- the provider module on its own -----------------------------------------------------


def _headers(secret: str, body: bytes, sent: datetime) -> dict:
    return {
        "Sentry-Hook-Signature": signature(secret, body),
        "Sentry-Hook-Timestamp": str(int(sent.timestamp())),
    }


def test_verify_accepts_a_fresh_signed_body():
    body = (SENTRY / "issue.created.json").read_bytes()
    with clock.frozen_at(MOMENT):
        Sentry().verify("client-secret", _headers("client-secret", body, MOMENT), body)
        # Sentry may send fractional seconds; hex case does not matter.
        headers = _headers("client-secret", body, MOMENT)
        headers["Sentry-Hook-Timestamp"] = f"{MOMENT.timestamp() + 0.25}"
        headers["Sentry-Hook-Signature"] = headers["Sentry-Hook-Signature"].upper()
        Sentry().verify("client-secret", headers, body)


def test_verify_states_the_skew():
    body = b"{}"
    with clock.frozen_at(MOMENT), pytest.raises(VerificationError) as refused:
        Sentry().verify("s", _headers("s", body, MOMENT - timedelta(seconds=1000)), body)
    assert refused.value.check == "stale_timestamp"
    assert "1000 s old" in refused.value.detail
    with clock.frozen_at(MOMENT), pytest.raises(VerificationError) as refused:
        Sentry().verify("s", _headers("s", body, MOMENT + timedelta(seconds=400)), body)
    assert "400 s in the future" in refused.value.detail


def test_signature_is_checked_before_freshness():
    with clock.frozen_at(MOMENT), pytest.raises(VerificationError) as refused:
        Sentry().verify("s", _headers("other", b"{}", MOMENT - timedelta(days=1)), b"{}")
    assert refused.value.check == "bad_signature"


def test_delivery_id_and_event_type():
    payload = fixture()
    assert Sentry().delivery_id({"Request-ID": "abc"}, payload) == "abc"
    raw = (SENTRY / "issue.created.json").read_bytes()
    assert Sentry().delivery_id({}, payload) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert Sentry().event_type({"Sentry-Hook-Resource": "issue"}, payload) == "issue.created"
    assert Sentry().event_type({}, {"action": "created"}) == "unknown.created"
    assert Sentry().event_type({"Sentry-Hook-Resource": "installation"}, None) == "installation"
