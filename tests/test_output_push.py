"""Pushing approved resolution outputs: to the source as a comment, to a subscription."""

from __future__ import annotations

import pytest

from app.cases.models import Case
from app.extensions import db
from app.outputs import service as outputs
from app.outputs.models import ResolutionOutput
from app.tasks import run_due
from tests.conftest import case_event_payloads
from tests.outbound_support import Receiver
from tests.replies_support import FakeAPI
from tests.test_outbound import subscribe
from tests.test_replies import _github_case


@pytest.fixture
def api():
    server = FakeAPI()
    yield server
    server.close()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def resolved(app, github, api, drain):
    """A GitHub case that can reply to ``api``, resolved, with its outputs written; the
    ticket notes approved. Returns (case id, ticket notes id, client summary id)."""
    app.config.update(OUTBOUND_ALLOW="127.0.0.1", OUTBOUND_RETRY_SCHEDULE="0,0,0")
    case_id = _github_case(app, github, api, drain)
    with app.app_context():
        case = db.session.get(Case, case_id)
        outputs.resolve_case(case, "Rolled back the deploy")
        db.session.commit()
        run_due()
        notes, _kb, summary = sorted(outputs.outputs_of(case), key=lambda o: o.id)
        outputs.set_status(notes, "approved")
        db.session.commit()
        return case_id, notes.id, summary.id


def _pushed_events(app, case_id: int) -> list[dict]:
    return case_event_payloads(app, case_id, "output.pushed")


def test_push_to_the_source_posts_the_document_as_a_comment(app, client, api, resolved):
    case_id, notes_id, _ = resolved
    answer = client.post(f"/api/cases/{case_id}/outputs/{notes_id}/push", json={"target": "source"})
    assert answer.status_code == 202, answer.json
    assert answer.json["output"]["status"] == "pushed"
    assert answer.json["output"]["pushed_to"] == "source"
    with app.app_context():
        run_due()
        content = db.session.get(ResolutionOutput, notes_id).content
    [comment] = [r for r in api.requests if r.path.endswith("/issues/1/comments")]
    assert comment.body["body"].startswith(content.strip())  # then the no-loop marker
    [event] = _pushed_events(app, case_id)
    assert event["target"] == "source" and event["kind"] == "ticket_notes"


def test_push_to_a_subscription_sends_a_signed_output_pushed(app, client, receiver, resolved):
    case_id, notes_id, _ = resolved
    subscription_id = subscribe(app, receiver, events=("output.approved",))  # not .pushed
    answer = client.post(
        f"/cases/{case_id}/outputs/{notes_id}/push",
        data={"target": f"subscription:{subscription_id}"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert "queued for the subscription" in answer.get_data(as_text=True)
    with app.app_context():
        run_due()
    [message] = [r for r in receiver.received if r.json["type"] == "output.pushed"]
    assert message.verified
    assert message.json["data"]["event"]["payload"]["content"].startswith("#")


def test_only_approved_outputs_push_and_targets_must_exist(app, client, resolved):
    case_id, notes_id, summary_id = resolved
    draft = client.post(f"/api/cases/{case_id}/outputs/{summary_id}/push",
                        json={"target": "source"})  # fmt: skip
    assert draft.status_code == 409 and "only an approved output" in draft.json["detail"]
    bad = client.post(f"/api/cases/{case_id}/outputs/{notes_id}/push",
                      json={"target": "subscription:nope"})  # fmt: skip
    assert bad.status_code == 400 and "no enabled subscription" in bad.json["detail"]
    assert _pushed_events(app, case_id) == []


def test_the_panel_offers_the_push_targets_of_an_approved_output(app, client, receiver, resolved):
    case_id, _, _ = resolved
    subscribe(app, receiver)
    page = client.get(f"/cases/{case_id}?output=ticket_notes").get_data(as_text=True)
    assert 'name="target"' in page
    assert "Comment on the github source" in page and "Subscription:" in page
