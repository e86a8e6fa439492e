"""GitLab: every fixture through the real route and a real RQ worker, on SQLite and Postgres;
the token check and what it refuses."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from app.events.models import CaseEvent
from app.extensions import db
from app.webhooks.models import Delivery
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.providers.gitlab import GitLab
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

GITLAB = FIXTURES / "gitlab"
ISSUE_KEY = "indev/gitlabtomatrix#issue/17"
PIPELINE_KEY = "indev/gitlabtomatrix:pipeline:pipeline-to-chat"
HOOKS = {
    "issue": "Issue Hook",
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "pipeline": "Pipeline Hook",
}


def fixture(name: str) -> dict:
    return json.loads((GITLAB / f"{name}.json").read_bytes())


class GitLabSender(Sender):
    """Posts GitLab deliveries the way GitLab does: the secret token as-is in
    ``X-Gitlab-Token``, ``Idempotency-Key`` stable across retries."""

    provider, source = "gitlab", "indev/gitlabtomatrix"

    def send(self, payload: dict | bytes, delivery_id: str | None = None, headers=None):
        """POST ``payload``; ``headers`` override (a None value removes the header)."""
        body = body_of(payload)
        kind = json.loads(body).get("object_kind") or "issue"
        sent = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": HOOKS.get(kind, "System Hook"),
            "X-Gitlab-Token": self.secret,
            "Idempotency-Key": delivery_id or str(uuid.uuid4()),
        }
        return self.post(body, sent, headers)

    def send_fixture(self, name: str, delivery_id: str | None = None):
        """Send ``shared/fixtures/gitlab/<name>.json`` as it is (raw bytes)."""
        return self.send((GITLAB / f"{name}.json").read_bytes(), delivery_id)


@pytest.fixture
def gitlab(app, client):
    return GitLabSender(app, client)


def _issue(action: str, **attributes) -> dict:
    payload = fixture("issue.created")
    payload["object_attributes"]["action"] = action
    payload["object_attributes"].update(attributes)
    return payload


def _pipeline(status: str, ref: str = "pipeline-to-chat") -> dict:
    payload = fixture("pipeline.failed")
    payload["object_attributes"]["status"] = status
    payload["object_attributes"]["ref"] = ref
    return payload


# --- the real route and a real worker ---------------------------------------------------


@BOTH_DATABASES
def test_every_fixture_becomes_the_right_case(app, gitlab, drain):
    for name in ("issue.created", "pipeline.failed"):
        assert gitlab.send_fixture(name).status_code == 202, name
    assert drain() == 0

    assert cases_by_key(app) == {
        ISSUE_KEY: {
            "title": "Test title (indev/gitlabtomatrix#17)",
            "status": "open",
            "closed_reason": None,
            "severity": "info",
            "source_url": "https://gitlab.test-example.ru/indev/gitlabtomatrix/issues/17",
            "deliveries": 1,
            "events": ["case.opened"],
        },
        PIPELINE_KEY: {
            # The fixture says status "fail"; GitLab's own name for it is "failed".
            "title": "Pipeline failed on pipeline-to-chat in indev/gitlabtomatrix",
            "status": "open",
            "closed_reason": None,
            "severity": "error",
            "source_url": "https://gitlab.example.com/indev/gitlabtomatrix/-/pipelines/75933",
            "deliveries": 1,
            "events": ["case.opened"],
        },
    }
    deliveries = {d.event_type: d for d in stored_deliveries(app)}
    assert set(deliveries) == {"issue.open", "pipeline.failed"}
    assert {d.status for d in deliveries.values()} == {"processed"}
    assert deliveries["issue.open"].outcome == "gitlab.open: opened a case"
    assert deliveries["pipeline.failed"].outcome == "gitlab.pipeline.failed: opened a case"
    with app.app_context():
        events = {e.payload["event_type"]: e for e in db.session.scalars(db.select(CaseEvent))}
        assert events["issue.open"].payload["summary"] == "ii_ivanov opened the issue"
        assert events["pipeline.failed"].payload["summary"] == (
            "Pipeline #75933 on pipeline-to-chat: failed (failed jobs: release-image-dind)"
        )
        for event in events.values():
            assert db.session.get(Delivery, event.causation_id).case_id == event.case_id


@BOTH_DATABASES
def test_issue_lifecycle_updates_closes_and_reopens_one_case(app, gitlab, drain):
    gitlab.send_fixture("issue.created")
    gitlab.send(_issue("update", title="Better title"))
    note = {
        "object_kind": "note",
        "event_type": "note",
        "user": {"username": "pp_petrov"},
        "project": fixture("issue.created")["project"],
        "object_attributes": {
            "note": "Looking at it",
            "noteable_type": "Issue",
            "url": "https://gitlab.test-example.ru/indev/gitlabtomatrix/issues/17#note_1",
        },
        "issue": {"iid": 17, "title": "Better title"},
    }
    gitlab.send(note)
    gitlab.send(_issue("close", title="Better title"))
    assert drain() == 0
    case = cases_by_key(app)[ISSUE_KEY]
    assert case["title"] == "Better title (indev/gitlabtomatrix#17)"
    assert case["status"] == "closed" and case["closed_reason"] == "auto"
    assert case["events"] == ["case.opened", "case.updated", "case.updated", "case.closed"]

    gitlab.send(_issue("reopen", title="Better title"))
    assert drain() == 0
    case = cases_by_key(app)[ISSUE_KEY]
    assert case["status"] == "open" and case["closed_reason"] is None
    assert case["events"][-1] == "case.reopened"
    assert case["deliveries"] == 5
    assert len(cases_by_key(app)) == 1
    assert summaries(app)[2] == "pp_petrov commented: Looking at it"


@BOTH_DATABASES
def test_green_pipeline_closes_the_failure_case_of_its_ref(app, gitlab, drain):
    gitlab.send_fixture("pipeline.failed")
    gitlab.send(_pipeline("success", ref="main"))  # another ref: nothing to close
    assert drain() == 0
    assert set(cases_by_key(app)) == {PIPELINE_KEY}

    gitlab.send(_pipeline("success"))
    assert drain() == 0
    case = cases_by_key(app)[PIPELINE_KEY]
    assert (case["status"], case["closed_reason"]) == ("closed", "auto")

    gitlab.send(_pipeline("failed"))
    gitlab.send(_pipeline("running"))  # no built-in command: recorded only
    assert drain() == 0
    assert cases_by_key(app)[PIPELINE_KEY]["events"] == [
        "case.opened",
        "case.closed",
        "case.reopened",
    ]
    outcomes = {d.event_type: d.outcome for d in stored_deliveries(app)}
    assert outcomes["pipeline.running"] == "no command matched; recorded only"


@BOTH_DATABASES
def test_redelivery_answers_200_and_is_processed_once(app, gitlab, drain):
    assert gitlab.send_fixture("issue.created", delivery_id="idem-1").status_code == 202
    assert_duplicate(gitlab.send_fixture("issue.created", delivery_id="idem-1"))
    assert queued(app) == 1
    assert drain() == 0
    assert_processed_once(app)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(CaseEvent.id))) == 1
    assert cases_by_key(app)[ISSUE_KEY]["deliveries"] == 1


def test_two_deliveries_about_one_issue_make_one_case(app, gitlab, drain):
    gitlab.send_fixture("issue.created")
    gitlab.send_fixture("issue.created")  # GitLab sent it twice, with two keys
    assert drain() == 0
    assert list(cases_by_key(app)) == [ISSUE_KEY]
    assert cases_by_key(app)[ISSUE_KEY]["deliveries"] == 2


def test_merge_request_opens_and_merge_closes(app, gitlab, drain):
    project = fixture("issue.created")["project"]
    merge_request = {
        "object_kind": "merge_request",
        "user": {"username": "ii_ivanov"},
        "project": project,
        "object_attributes": {
            "iid": 17,  # the same number as the issue: a different case
            "title": "Add pipeline notifications",
            "url": "https://gitlab.test-example.ru/indev/gitlabtomatrix/-/merge_requests/17",
            "action": "open",
        },
    }
    gitlab.send(merge_request)
    gitlab.send_fixture("issue.created")
    merged = copy.deepcopy(merge_request)
    merged["object_attributes"]["action"] = "merge"
    gitlab.send(merged)
    assert drain() == 0
    cases = cases_by_key(app)
    assert set(cases) == {"indev/gitlabtomatrix!17", ISSUE_KEY}
    mr = cases["indev/gitlabtomatrix!17"]
    assert mr["title"] == "Add pipeline notifications (indev/gitlabtomatrix!17)"
    assert (mr["status"], mr["closed_reason"]) == ("closed", "auto")
    assert cases[ISSUE_KEY]["status"] == "open"


def test_event_uuid_is_the_delivery_id_when_there_is_no_idempotency_key(app, gitlab):
    response = gitlab.send(
        fixture("issue.created"),
        headers={"Idempotency-Key": None, "X-Gitlab-Event-UUID": "uuid-17"},
    )
    assert response.status_code == 202
    assert response.json == {"delivery_id": "uuid-17"}


def test_no_delivery_id_at_all_is_400_naming_the_headers(app, gitlab):
    response = gitlab.send(fixture("issue.created"), headers={"Idempotency-Key": None})
    assert response.status_code == 400
    assert response.json["error"] == "bad_payload"
    assert "Idempotency-Key" in response.json["detail"]
    assert "X-Gitlab-Event-UUID" in response.json["detail"]
    [stored] = stored_deliveries(app)
    assert stored.verdict == "rejected"
    assert queued(app) == 0


@pytest.mark.parametrize(
    ("token", "check"),
    [(None, "missing_header"), ("", "missing_header"), ("not-the-secret", "bad_token")],
)
def test_refused_token_is_401_and_nothing_is_queued(app, gitlab, drain, token, check):
    response = gitlab.send(
        (GITLAB / "issue.created.json").read_bytes(), headers={"X-Gitlab-Token": token}
    )
    [stored] = assert_refused(app, drain, response, check, "X-Gitlab-Token")
    assert stored.verdict == "unauthorized" and stored.status == "refused"
    assert stored.delivery_id is None
    if token:
        assert stored.headers["X-Gitlab-Token"] == "[redacted]"


def test_null_and_odd_fields_never_crash_processing(app, gitlab, drain):
    payloads = [
        {"object_kind": "issue", "object_attributes": None, "project": None},
        {"object_kind": "issue", "object_attributes": {"action": "open", "iid": None}},
        {"object_kind": "issue", "object_attributes": {"action": "open", "iid": 3, "title": None}},
        {"object_kind": "note", "object_attributes": {"noteable_type": "Issue"}, "issue": None},
        {"object_kind": "note", "object_attributes": {"noteable_type": "Commit", "note": "x"}},
        {"object_kind": "pipeline", "object_attributes": {"status": "failed"}, "builds": None},
        {"object_kind": "pipeline", "object_attributes": {"status": None}, "builds": [None, 1]},
        {"object_kind": None},
        {},
    ]
    for payload in payloads:
        assert gitlab.send(payload).status_code == 202
    assert drain() == 0
    titles = case_titles(app)
    assert "Untitled issue (unknown project#3)" in titles
    assert "Pipeline failed on unknown ref in unknown project" in titles
    assert delivery_statuses(app) == {"processed"}


# --- the provider module on its own -----------------------------------------------------


def test_verify_accepts_the_token_as_is():
    GitLab().verify("s3cret", {"X-Gitlab-Token": "s3cret"}, b"{}")


def test_verify_refuses_a_wrong_or_missing_token():
    with pytest.raises(VerificationError) as refused:
        GitLab().verify("s3cret", {"X-Gitlab-Token": "s3cre"}, b"{}")
    assert refused.value.check == "bad_token"
    assert "X-Gitlab-Token" in refused.value.detail
    with pytest.raises(VerificationError) as refused:
        GitLab().verify("s3cret", {}, b"{}")
    assert refused.value.check == "missing_header"
    assert "X-Gitlab-Token" in refused.value.detail


def test_delivery_id_prefers_idempotency_key():
    headers = {"Idempotency-Key": "idem", "X-Gitlab-Event-UUID": "uuid"}
    assert GitLab().delivery_id(headers, {}) == "idem"
    assert GitLab().delivery_id({"X-Gitlab-Event-UUID": "uuid"}, {}) == "uuid"
    with pytest.raises(PayloadError, match="Idempotency-Key"):
        GitLab().delivery_id({"Idempotency-Key": "  "}, {})


@pytest.mark.parametrize(
    ("payload", "headers", "expected"),
    [
        (fixture("issue.created"), {}, "issue.open"),
        (_issue("close"), {}, "issue.close"),
        (fixture("pipeline.failed"), {}, "pipeline.failed"),
        (_pipeline("success"), {}, "pipeline.success"),
        ({"object_kind": "note", "object_attributes": {"action": "create"}}, {}, "note.create"),
        ({"object_kind": "note", "object_attributes": {}}, {}, "note"),
        ({}, {"X-Gitlab-Event": "Merge Request Hook"}, "merge_request"),
        ({"object_attributes": {"action": "open"}}, {"X-Gitlab-Event": "Issue Hook"}, "issue.open"),
        (
            {"object_attributes": {"action": "open"}},
            {"X-Gitlab-Event": "Confidential Issue Hook"},
            "issue.open",
        ),
        (None, {}, "unknown"),
    ],
)
def test_event_type(payload, headers, expected):
    assert GitLab().event_type(headers, payload) == expected


def test_comment_on_a_commit_opens_no_case():
    from app.webhooks.commands import matching

    payload = {"object_kind": "note", "object_attributes": {"noteable_type": "Commit"}}
    assert matching(GitLab().builtin_commands(), "note", payload) == []
