"""Jira: every fixture through the real route and a real RQ worker, on SQLite and Postgres;
the signature check and what it refuses."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid

import pytest

from app.webhooks.commands import matching
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.providers.jira import Jira
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

JIRA = FIXTURES / "jira"
CREATED = "jira.issue_created"
UPDATED = "jira.issue_updated.status-changed"
COMMENTED = "comment_created"


def fixture(name: str) -> dict:
    return json.loads((JIRA / f"{name}.json").read_bytes())


def signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature`` as Atlassian documents it, computed here independently."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class JiraSender(Sender):
    """Posts signed Jira deliveries to one endpoint through the real route."""

    provider, source = "jira", "jira.test-example.ru"

    def send(self, payload: dict | bytes, delivery_id: str | None = None, headers=None):
        """POST ``payload`` signed; ``headers`` override (a None value removes the header)."""
        body = body_of(payload)
        sent = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Atlassian-Webhook-Identifier": delivery_id or str(uuid.uuid4()),
            "X-Hub-Signature": signature(self.secret, body),
        }
        return self.post(body, sent, headers)

    def send_fixture(self, name: str, delivery_id: str | None = None):
        """Send ``shared/fixtures/jira/<name>.json`` as it is (raw bytes)."""
        return self.send((JIRA / f"{name}.json").read_bytes(), delivery_id)


@pytest.fixture
def jira(app, client):
    return JiraSender(app, client)


def _updated(status: str, category: str, event_name: str = "issue_generic") -> dict:
    """The created issue (BBCOM-1398) moved to ``status`` in status category ``category``."""
    payload = fixture(UPDATED)
    payload["issue"] = copy.deepcopy(fixture(CREATED)["issue"])
    payload["issue_event_type_name"] = event_name
    payload["issue"]["fields"]["status"]["name"] = status
    payload["issue"]["fields"]["status"]["statusCategory"]["key"] = category
    payload["changelog"]["items"][0]["toString"] = status
    return payload


# --- the real route and a real worker ---------------------------------------------------


@BOTH_DATABASES
def test_every_fixture_becomes_the_right_case(app, jira, drain):
    for name in (CREATED, UPDATED, COMMENTED):
        assert jira.send_fixture(name).status_code == 202, name
    assert drain() == 0

    assert cases_by_key(app) == {
        "BBCOM-1398": {
            "title": "BBCOM-1398: Prueba de creación de tareas en un proyecto público",
            "status": "open",
            "closed_reason": None,
            "severity": "warning",  # priority Medium
            # issue.self has a context path (/jira/rest/api/2/...): kept in the page URL.
            "source_url": "https://jira.test-example.ru/jira/browse/BBCOM-1398",
            "deliveries": 1,
            "events": ["case.opened"],
        },
        "INDEV-6": {
            "title": "INDEV-6: Prueba de creación de tareas en un proyecto público",
            "status": "open",
            "closed_reason": None,
            "severity": "error",  # priority Highest
            "source_url": "https://jira.test-example.ru/browse/INDEV-6",
            "deliveries": 1,
            "events": ["case.opened"],
        },
    }
    outcomes = {d.event_type: (d.status, d.outcome) for d in stored_deliveries(app)}
    assert outcomes == {
        "jira:issue_created": ("processed", "jira.open: opened a case"),
        # An update about an issue Casehook has not seen yet opens its case.
        "jira:issue_updated": ("processed", "jira.activity: opened a case"),
        # This capture (Jira Server 7) names its issue only by id in comment.self.
        "comment_created": ("processed", "jira.comment_without_issue: ignored"),
    }
    assert summaries(app) == [
        "jira_test created the issue",
        "jira_test changed status: To Do → In Progress",
    ]


@BOTH_DATABASES
def test_done_status_closes_the_case_and_reopening_reopens_it(app, jira, drain):
    jira.send_fixture(CREATED)
    jira.send(_updated("In Progress", "indeterminate"))
    jira.send(_updated("Done", "done"))
    assert drain() == 0
    case = cases_by_key(app)["BBCOM-1398"]
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")
    assert case["events"] == ["case.opened", "case.updated", "case.closed"]

    jira.send(_updated("Reopened", "new", event_name="issue_reopened"))
    assert drain() == 0
    case = cases_by_key(app)["BBCOM-1398"]
    assert case["status"] == "open"
    assert case["events"][-1] == "case.reopened"
    outcomes = [d.outcome for d in stored_deliveries(app)]
    assert outcomes == [
        "jira.open: opened a case",
        "jira.activity: updated the case",
        "jira.done: closed the case (auto)",
        "jira.reopened: reopened the case",
    ]


@BOTH_DATABASES
def test_comment_that_names_its_issue_lands_on_the_issue_case(app, jira, drain):
    jira.send_fixture(CREATED)
    comment = fixture(COMMENTED)
    # Jira Cloud and Server 8+ send the issue with comment events.
    comment["issue"] = {
        "id": "30369",
        "self": "https://jira.test-example.ru/jira/rest/api/2/issue/30369",
        "key": "BBCOM-1398",
        "fields": {"summary": "Prueba de creación de tareas en un proyecto público"},
    }
    jira.send(comment)
    assert drain() == 0
    assert cases_by_key(app)["BBCOM-1398"]["events"] == ["case.opened", "case.updated"]
    assert summaries(app)[-1] == "ii_ivanov commented: 12345"


@BOTH_DATABASES
def test_redelivery_answers_200_and_is_processed_once(app, jira, drain):
    assert jira.send_fixture(CREATED, delivery_id="atl-1").status_code == 202
    assert_duplicate(jira.send_fixture(CREATED, delivery_id="atl-1"))
    assert queued(app) == 1
    assert drain() == 0
    assert_processed_once(app)
    assert cases_by_key(app)["BBCOM-1398"]["deliveries"] == 1
    assert cases_by_key(app)["BBCOM-1398"]["events"] == ["case.opened"]


def test_two_deliveries_about_one_issue_make_one_case(app, jira, drain):
    jira.send_fixture(CREATED)
    jira.send(_updated("In Progress", "indeterminate"))
    assert drain() == 0
    assert list(cases_by_key(app)) == ["BBCOM-1398"]
    assert cases_by_key(app)["BBCOM-1398"]["deliveries"] == 2


def test_deleted_issue_closes_its_case(app, jira, drain):
    jira.send_fixture(CREATED)
    deleted = fixture(CREATED)
    deleted["webhookEvent"] = "jira:issue_deleted"
    jira.send(deleted)
    assert drain() == 0
    case = cases_by_key(app)["BBCOM-1398"]
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")


def test_missing_webhook_identifier_is_400(app, jira):
    response = jira.send(fixture(CREATED), headers={"X-Atlassian-Webhook-Identifier": None})
    assert response.status_code == 400
    assert "X-Atlassian-Webhook-Identifier" in response.json["detail"]
    assert queued(app) == 0


@pytest.mark.parametrize(
    ("header", "check"),
    [
        (None, "missing_header"),
        ("sha256=" + "0" * 64, "bad_signature"),
        ("wrong-secret", "bad_signature"),
        ("sha1=" + "0" * 40, "bad_signature"),
        ("0" * 64, "bad_signature"),
    ],
)
def test_refused_signature_is_401_and_nothing_is_queued(app, jira, drain, header, check):
    body = (JIRA / f"{CREATED}.json").read_bytes()
    if header == "wrong-secret":
        header = signature("another secret", body)
    response = jira.send(body, headers={"X-Hub-Signature": header})
    [stored] = assert_refused(app, drain, response, check, "X-Hub-Signature")
    assert stored.verdict == "unauthorized" and stored.delivery_id is None


def test_a_changed_byte_is_refused(app, jira):
    body = (JIRA / f"{CREATED}.json").read_bytes()
    tampered = jira.post(
        body.replace(b"BBCOM-1398", b"BBCOM-1399"),
        {"X-Atlassian-Webhook-Identifier": "x", "X-Hub-Signature": signature(jira.secret, body)},
    )
    assert tampered.status_code == 401
    assert tampered.json["error"] == "bad_signature"


def test_null_and_odd_fields_never_crash_processing(app, jira, drain):
    payloads = [
        {"webhookEvent": "jira:issue_created", "issue": None},
        {"webhookEvent": "jira:issue_created", "issue": {"key": "X-1", "fields": None}},
        {"webhookEvent": "jira:issue_created", "issue": {"key": "X-2", "self": 5}},
        {
            "webhookEvent": "jira:issue_updated",
            "issue": {"key": "X-3", "fields": {"priority": None, "status": None}},
            "changelog": {"items": [None, {"field": None}]},
        },
        {"webhookEvent": "comment_created", "comment": None},
        {"webhookEvent": "comment_created", "comment": {"self": None, "author": None}},
        {"webhookEvent": None},
        {},
    ]
    for payload in payloads:
        assert jira.send(payload).status_code == 202
    assert drain() == 0
    assert case_titles(app) == [
        "Jira jira:issue_created without an issue",
        "X-1: Untitled issue",
        "X-2: Untitled issue",
        "X-3: Untitled issue",
    ]
    assert delivery_statuses(app) == {"processed"}


# --- the provider module on its own -----------------------------------------------------


def test_verify_accepts_the_documented_scheme():
    body = (JIRA / f"{CREATED}.json").read_bytes()
    Jira().verify("s3cret", {"X-Hub-Signature": signature("s3cret", body)}, body)
    # Hex case is not significant.
    Jira().verify("s3cret", {"X-Hub-Signature": signature("s3cret", body).upper()}, body)


def test_verify_refusals_name_the_header():
    with pytest.raises(VerificationError) as refused:
        Jira().verify("s3cret", {}, b"{}")
    assert refused.value.check == "missing_header"
    assert "X-Hub-Signature" in refused.value.detail
    with pytest.raises(VerificationError) as refused:
        Jira().verify("s3cret", {"X-Hub-Signature": signature("other", b"{}")}, b"{}")
    assert refused.value.check == "bad_signature"
    with pytest.raises(VerificationError, match="sha256=<hex>"):
        Jira().verify("s3cret", {"X-Hub-Signature": "md5=abc"}, b"{}")


def test_delivery_id_is_required():
    assert Jira().delivery_id({"X-Atlassian-Webhook-Identifier": "a-1"}, {}) == "a-1"
    with pytest.raises(PayloadError, match="X-Atlassian-Webhook-Identifier"):
        Jira().delivery_id({}, {})


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("Blocker", "critical"),
        ("Critical", "critical"),
        ("Highest", "error"),
        ("High", "error"),
        ("Medium", "warning"),
        ("Low", "info"),
        ("Lowest", "info"),
        ("Something custom", "info"),
        (None, "info"),
    ],
)
def test_priority_maps_to_severity(priority, severity):
    payload = fixture(CREATED)
    payload["issue"]["fields"]["priority"] = {"name": priority}
    assert Jira().case_facts("jira:issue_created", payload).severity == severity


def test_generic_update_in_the_done_category_matches_only_the_close():
    done = _updated("Done", "done")
    assert [c.name for c in matching(Jira().builtin_commands(), "jira:issue_updated", done)] == [
        "jira.done"
    ]
    source = Jira().case_facts("jira:issue_updated", {"issue": {"key": "K-1", "self": "x"}})
    assert source.source_url is None
