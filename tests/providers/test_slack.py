"""Slack Events API: every fixture through the real route and a real RQ worker, on SQLite and
Postgres; the signature, freshness and challenge rules; Slack's published signature vector."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from app import clock
from app.cases.models import Case
from app.extensions import db
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.providers.slack import Slack, sign
from tests.conftest import BOTH_DATABASES, FIXTURES
from tests.providers.conftest import (
    Sender,
    assert_401,
    assert_duplicate,
    assert_refused,
    body_of,
    case_rows,
    case_titles,
    delivery_statuses,
    stored_deliveries,
    with_headers,
)

SLACK_FIXTURES = FIXTURES / "slack"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
TEAM, CHANNEL, ROOT = "T0JFD6M53", "C0LAN2Q65", "1714564800.000100"

# Slack docs, "Verifying requests from Slack": the worked example.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TS = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


class SlackSender(Sender):
    """Posts deliveries signed the way Slack signs them, with the clock frozen at NOW."""

    provider, source, frozen_at = "slack", "Acme workspace", NOW

    def headers(self, body: bytes, timestamp: int | str = NOW_TS, secret: str | None = None):
        # Computed here, not with the module's sign(), so the scheme is checked, not echoed.
        base = f"v0:{timestamp}:".encode() + body
        digest = hmac.new((secret or self.secret).encode(), base, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": f"v0={digest}",
        }

    def send(self, payload: dict | bytes, timestamp: int | str = NOW_TS, **extra):
        body = body_of(payload)
        return self.post(body, self.headers(body, timestamp), extra)

    def send_fixture(self, name: str, **extra):
        return self.send((SLACK_FIXTURES / f"{name}.json").read_bytes(), **extra)


@pytest.fixture
def slack(app, client):
    return SlackSender(app, client)


def fixture(name: str) -> dict:
    return json.loads((SLACK_FIXTURES / f"{name}.json").read_bytes())


def mention(event_id: str, ts: str, text: str, thread_ts: str | None = None) -> dict:
    """An app_mention event_callback as Slack documents it (Events API, app_mention)."""
    event = {
        "type": "app_mention",
        "user": "U061F7AUR",
        "text": text,
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": TEAM,
        "api_app_id": "A28SCUES3",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1714564800,
        "authed_users": ["U0LAN0Z89"],
    }


def reaction(event_id: str, name: str, ts: str = ROOT) -> dict:
    """The reaction_added fixture, with an event_id, on message ``ts`` in CHANNEL."""
    payload = fixture("event_callback.reaction_added")
    payload["event_id"] = event_id
    payload["event"]["reaction"] = name
    payload["event"]["item"].update(channel=CHANNEL, ts=ts)
    return payload


def _cases(app) -> dict:
    return case_rows(app, "status", "closed_reason", "severity", "events")


@BOTH_DATABASES
def test_every_fixture_through_the_route_and_a_worker(app, slack, drain):
    challenge = slack.send_fixture("url_verification")
    assert challenge.status_code == 200
    assert challenge.json["challenge"] == "valid_challenge_token"
    assert challenge.json["delivery_id"].startswith("url_verification:")

    reacted = slack.send_fixture("event_callback.reaction_added")
    assert reacted.status_code == 202
    # The fixture predates event_id: its id is derived from the body.
    assert reacted.json["delivery_id"].startswith("event_callback:")
    assert drain() == 0

    # A :grinning: reaction is chatter, not a request for help: recorded, no case.
    assert _cases(app) == {}
    by_type = {d.event_type: d for d in stored_deliveries(app)}
    assert set(by_type) == {"url_verification", "reaction_added"}
    assert by_type["url_verification"].status == "processed"
    assert by_type["url_verification"].outcome.startswith("answered at once")
    assert by_type["reaction_added"].status == "processed"
    assert by_type["reaction_added"].outcome == "no command matched; recorded only"
    assert all(d.verdict == "accepted" for d in by_type.values())

    # Slack's retry of the same event: new timestamp, same body → the same delivery.
    retry = slack.send_fixture(
        "event_callback.reaction_added", timestamp=NOW_TS + 3, **{"X-Slack-Retry-Num": "1"}
    )
    assert_duplicate(retry)
    assert drain() == 0
    assert len(stored_deliveries(app)) == 2


@BOTH_DATABASES
def test_mention_opens_a_case_for_the_thread_and_a_check_mark_closes_it(app, slack, drain):
    text = "<@U0LAN0Z89>   the deploy is failing\nwith a 502"
    assert slack.send(mention("Ev01", ROOT, text)).status_code == 202
    assert drain() == 0
    key = f"{TEAM}:{CHANNEL}:{ROOT}"
    assert _cases(app) == {key: ("open", None, "info", ["case.opened"])}
    with app.app_context():
        case = db.session.scalars(db.select(Case)).one()
        assert case.title == f"Slack: <@U0LAN0Z89> the deploy is failing with a 502 in {CHANNEL}"
        assert case.provider == "slack"
        assert case.source_url == f"https://slack.com/app_redirect?channel={CHANNEL}&team={TEAM}"
        assert case.events[0].payload["summary"] == (
            "U061F7AUR mentioned the app: <@U0LAN0Z89> the deploy is failing with a 502"
        )

    # A mention inside the thread lands on the thread's case; a plain reply and another
    # reaction are recorded only.
    reply = mention("Ev02", "1714564860.000200", "<@U0LAN0Z89> any news?", thread_ts=ROOT)
    plain = copy.deepcopy(reply)
    plain["event"].update(type="message", text="I see it too", ts="1714564870.000300")
    plain["event_id"] = "Ev03"
    for payload in (reply, plain, reaction("Ev04", "eyes")):
        assert slack.send(payload).status_code == 202
    assert drain() == 0
    assert _cases(app) == {key: ("open", None, "info", ["case.opened", "case.updated"])}

    assert slack.send(reaction("Ev05", "white_check_mark")).status_code == 202
    assert drain() == 0
    assert _cases(app)[key] == (
        "closed",
        "auto",
        "info",
        ["case.opened", "case.updated", "case.closed"],
    )
    outcomes = {d.delivery_id: d.outcome for d in stored_deliveries(app)}
    assert outcomes["Ev03"] == outcomes["Ev04"] == "no command matched; recorded only"
    assert outcomes["Ev05"] == "slack.done: closed the case (auto)"

    # Another check mark changes nothing; a new mention in the thread reopens it.
    assert slack.send(reaction("Ev06", "heavy_check_mark")).status_code == 202
    assert drain() == 0
    assert {d.delivery_id: d.outcome for d in stored_deliveries(app)}["Ev06"].endswith(
        "case already closed"
    )
    again = mention("Ev07", "1714565000.000400", "<@U0LAN0Z89> it is back", thread_ts=ROOT)
    assert slack.send(again).status_code == 202
    assert drain() == 0
    assert _cases(app)[key][:2] == ("open", None)
    assert _cases(app)[key][3][-1] == "case.reopened"


@BOTH_DATABASES
def test_a_check_mark_on_an_unknown_message_opens_nothing(app, slack, drain):
    assert slack.send(reaction("Ev10", "white_check_mark")).status_code == 202
    assert drain() == 0
    assert _cases(app) == {}
    assert stored_deliveries(app)[0].outcome == "slack.done: no case to close"


def test_redelivered_event_is_processed_once(app, slack, drain):
    payload = mention("Ev20", ROOT, "<@U0LAN0Z89> help")
    assert slack.send(payload).status_code == 202
    again = slack.send(payload, timestamp=NOW_TS + 60, **{"X-Slack-Retry-Num": "1"})
    assert again.status_code == 200
    assert again.json == {
        "delivery_id": "Ev20",
        "duplicate": True,
        "detail": "delivery already received; not processed again",
    }
    assert drain() == 0
    assert _cases(app) == {f"{TEAM}:{CHANNEL}:{ROOT}": ("open", None, "info", ["case.opened"])}


def test_unsigned_url_verification_gets_401_and_no_challenge(app, slack, client):
    body = (SLACK_FIXTURES / "url_verification.json").read_bytes()
    unsigned = slack.post(body, {"Content-Type": "application/json"})
    forged = slack.post(body, slack.headers(body, secret="not the signing secret"))
    for response, check in ((unsigned, "missing_header"), (forged, "bad_signature")):
        assert_401(response, check)
        assert "valid_challenge_token" not in response.get_data(as_text=True)
    assert "X-Slack-Signature" in unsigned.json["detail"]
    assert {(d.verdict, d.status, d.delivery_id) for d in stored_deliveries(app)} == {
        ("unauthorized", "refused", None)
    }


REFUSALS = {
    "missing signature": (
        lambda s, body: with_headers(s.headers(body), {"X-Slack-Signature": None}),
        "missing_header",
        ["X-Slack-Signature"],
    ),
    "missing timestamp": (
        lambda s, body: with_headers(s.headers(body), {"X-Slack-Request-Timestamp": None}),
        "missing_header",
        ["X-Slack-Request-Timestamp"],
    ),
    "another secret": (
        lambda s, body: s.headers(body, secret="someone else's secret"),
        "bad_signature",
        ["X-Slack-Signature"],
    ),
    "changed body": (
        lambda s, body: s.headers(body.replace(b"help", b"hel p")),
        "bad_signature",
        ["X-Slack-Signature"],
    ),
    "signature of another timestamp": (
        lambda s, body: {
            **s.headers(body),
            "X-Slack-Signature": s.headers(body, NOW_TS - 1)["X-Slack-Signature"],
        },
        "bad_signature",
        ["X-Slack-Signature"],
    ),
    "stale timestamp": (
        lambda s, body: s.headers(body, NOW_TS - 301),
        "stale_timestamp",
        ["301 s old", "skew -301 s", "X-Slack-Request-Timestamp"],
    ),
    "future timestamp": (
        lambda s, body: s.headers(body, NOW_TS + 400),
        "stale_timestamp",
        ["400 s in the future", "skew +400 s"],
    ),
    "timestamp not a number": (
        lambda s, body: s.headers(body, "yesterday"),
        "stale_timestamp",
        ["'yesterday'", "not a Unix time"],
    ),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refusals_answer_401_and_process_nothing(app, slack, drain, case):
    make_headers, check, phrases = REFUSALS[case]
    body = json.dumps(mention("Ev30", ROOT, "<@U0LAN0Z89> help")).encode()
    response = slack.post(body, make_headers(slack, body))
    [stored] = assert_refused(app, drain, response, check, *phrases)
    assert (stored.verdict, stored.status, stored.delivery_id) == ("unauthorized", "refused", None)
    assert stored.verdict_detail.startswith(check)


@pytest.mark.parametrize("skew", [-300, 300])
def test_timestamps_exactly_five_minutes_off_are_accepted(app, slack, skew):
    response = slack.send(mention("Ev40", ROOT, "hi"), timestamp=NOW_TS + skew)
    assert response.status_code == 202


def test_body_without_event_id_is_rejected_naming_it(app, slack, drain):
    response = slack.send({"type": "event_callback", "team_id": TEAM, "event": None})
    assert response.status_code == 400
    assert response.json["error"] == "bad_payload"
    assert "event_id" in response.json["detail"]
    assert drain() == 0
    assert [(d.verdict, d.delivery_id) for d in stored_deliveries(app)] == [("rejected", None)]


def test_null_and_missing_fields_never_crash_processing(app, slack, drain):
    payloads = [
        {"type": "event_callback", "event_id": "Ev50", "event": None},
        {"type": "event_callback", "event_id": "Ev51", "event": {"type": "app_mention"}},
        {
            "type": "event_callback",
            "event_id": "Ev52",
            "team_id": None,
            "event": {"type": "app_mention", "text": None, "channel": None, "ts": None},
        },
        {
            "type": "event_callback",
            "event_id": "Ev53",
            "event": {"type": "reaction_added", "reaction": "white_check_mark", "item": None},
        },
        {"type": "event_callback", "event_id": "Ev54", "event": {"type": None, "text": 7}},
        {"event_id": "Ev55"},
        {"type": "app_rate_limited", "team_id": TEAM, "minute_rate_limited": 1518467820},
    ]
    for payload in payloads:
        assert slack.send(payload).status_code == 202, payload
    assert drain() == 0
    assert case_titles(app) == ["Slack: app mention in Slack", "Slack: app mention in Slack"]
    assert set(case_rows(app)) == {None}
    assert delivery_statuses(app) == {"processed"}


# --- verify() and the other methods, without HTTP -------------------------------------------


def test_slack_documented_vector_is_accepted():
    assert sign(DOC_SECRET, DOC_TS, DOC_BODY) == DOC_SIGNATURE
    headers = {"X-Slack-Request-Timestamp": DOC_TS, "X-Slack-Signature": DOC_SIGNATURE}
    with clock.frozen_at(datetime.fromtimestamp(int(DOC_TS) + 60, UTC)):
        Slack().verify(DOC_SECRET, headers, DOC_BODY)
        # Header names are case-insensitive, in a plain dict too.
        Slack().verify(DOC_SECRET, {k.lower(): v for k, v in headers.items()}, DOC_BODY)


def test_vector_checked_at_the_real_time_is_stale():
    headers = {"X-Slack-Request-Timestamp": DOC_TS, "X-Slack-Signature": DOC_SIGNATURE}
    with pytest.raises(VerificationError) as refused:
        Slack().verify(DOC_SECRET, headers, DOC_BODY)
    assert refused.value.check == "stale_timestamp"
    assert "s old" in refused.value.detail


@pytest.mark.parametrize(
    ("secret", "body", "signature", "check"),
    [
        ("another secret", DOC_BODY, DOC_SIGNATURE, "bad_signature"),
        (DOC_SECRET, DOC_BODY + b"&x=1", DOC_SIGNATURE, "bad_signature"),
        (DOC_SECRET, DOC_BODY, DOC_SIGNATURE.replace("v0=", "v1="), "bad_signature"),
        (DOC_SECRET, DOC_BODY, "", "missing_header"),
    ],
)
def test_verify_refuses(secret, body, signature, check):
    headers = {"X-Slack-Request-Timestamp": DOC_TS, "X-Slack-Signature": signature}
    with (
        clock.frozen_at(datetime.fromtimestamp(int(DOC_TS), UTC)),
        pytest.raises(VerificationError) as refused,
    ):
        Slack().verify(secret, headers, body)
    assert refused.value.check == check
    assert "X-Slack-Signature" in refused.value.detail


def test_ids_and_event_types():
    slack = get_provider("slack")
    assert isinstance(slack, Slack)
    challenge = fixture("url_verification")
    first = slack.delivery_id({"X-Slack-Request-Timestamp": "1"}, challenge)
    assert first == slack.delivery_id({"X-Slack-Request-Timestamp": "1"}, challenge)
    assert first != slack.delivery_id({"X-Slack-Request-Timestamp": "2"}, challenge)
    assert slack.event_type({}, challenge) == "url_verification"
    assert slack.immediate_answer("url_verification", challenge) == {
        "challenge": "valid_challenge_token"
    }
    assert slack.immediate_answer("reaction_added", challenge) is None
    assert slack.delivery_id({}, mention("Ev9", ROOT, "x")) == "Ev9"
    assert slack.event_type({}, mention("Ev9", ROOT, "x")) == "app_mention"
    assert slack.event_type({}, fixture("event_callback.reaction_added")) == "reaction_added"
    for payload in ({}, {"type": "event_callback"}, {"type": "event_callback", "event": {}}):
        with pytest.raises(PayloadError, match="event_id"):
            slack.delivery_id({}, payload)


def test_case_facts_of_the_reaction_fixture():
    facts = Slack().case_facts("reaction_added", fixture("event_callback.reaction_added"))
    assert facts.dedup_key == "T0JFD6M53:D2AQCJCQ2:1477958101.000004"
    assert facts.title == "Slack: :grinning: on a message in D2AQCJCQ2"
    assert facts.summary == "U27FFLNF4 reacted :grinning:"
    assert facts.severity == "info"
