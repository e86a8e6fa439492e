"""The outputs JSON API and console routes: resolve (202 while a worker writes), list, edit,
approve/reject, regenerate, download; roles, CSRF, errors as ``{"error", "detail"}``."""

from __future__ import annotations

import pytest

from app.cases.models import Case
from app.extensions import db
from app.outputs.models import ResolutionOutput
from app.tasks import run_due
from tests.conftest import BOTH_DATABASES

SUMMARY = "Fixed the typo in README.md and pushed the change."
HTMX = {"HX-Request": "true"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def case_id(app, github, drain):
    assert github.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    return 1


@pytest.fixture
def engineer(api_token):
    return bearer(api_token("engineer"))


@pytest.fixture
def viewer(api_token):
    return bearer(api_token("viewer"))


@pytest.fixture
def api(anonymous_client):
    """A client without a session: bearer tokens alone say who is asking."""
    return anonymous_client


@pytest.fixture
def written(api, case_id, engineer, drain):
    """Case 1 resolved through the API and its outputs written: ``{kind: output dict}``."""
    client = api
    assert (
        client.post(
            f"/api/cases/{case_id}/resolve", json={"summary": SUMMARY}, headers=engineer
        ).status_code
        == 202
    )
    assert drain() == 0
    body = client.get(f"/api/cases/{case_id}/outputs", headers=engineer).json
    return {o["kind"]: o for o in body["outputs"]}


# --- JSON API -----------------------------------------------------------------------------------


@BOTH_DATABASES
def test_resolve_answers_202_and_the_outputs_follow(app, api, case_id, engineer, drain):
    client = api
    assert client.get(f"/api/cases/{case_id}/outputs", headers=engineer).json == {
        "status": "none",
        "outputs": [],
        "detail": None,
        "task": None,
    }
    answer = client.post(
        f"/api/cases/{case_id}/resolve", json={"summary": SUMMARY}, headers=engineer
    )
    assert answer.status_code == 202
    assert answer.json["outputs"] == "pending"
    assert answer.json["case"]["status"] == "resolved"
    assert answer.json["case"]["resolution_summary"] == SUMMARY
    pending = client.get(f"/api/cases/{case_id}/outputs", headers=engineer).json
    assert (pending["status"], pending["outputs"]) == ("pending", [])
    assert pending["task"]["status"] == "queued" and pending["task"]["last_error"] is None
    assert drain() == 0
    listed = client.get(f"/api/cases/{case_id}/outputs", headers=engineer).json
    assert listed["status"] == "ready"
    assert [o["kind"] for o in listed["outputs"]] == [
        "ticket_notes",
        "kb_article",
        "client_summary",
    ]
    kb = listed["outputs"][1]
    assert kb["status"] == "draft" and kb["writer"] == "builtin" and kb["model"] is None
    assert kb["label"] == "Knowledge-base article"
    assert kb["data"]["root_cause"] == SUMMARY and kb["data"]["rule_out_first"] == []
    assert set(kb) >= {
        "id",
        "case_id",
        "content",
        "generated_content",
        "edited",
        "generated_at",
        "updated_at",
        "approved_by",
        "approved_at",
    }
    events = client.get(f"/api/cases/{case_id}", headers=engineer).json["events"]
    assert [e["type"] for e in events][-4:] == ["case.resolved"] + ["output.generated"] * 3


def test_resolve_refusals(api, case_id, engineer, drain):
    client = api
    url = f"/api/cases/{case_id}/resolve"
    for body, detail in [
        ({}, "summary: Field required"),
        ({"summary": "   "}, "resolution summary is required"),
        ({"summary": 7}, "summary: Input should be a valid string"),
    ]:
        answer = client.post(url, json=body, headers=engineer)
        assert answer.status_code == 400 and answer.json["error"] == "invalid_input"
        assert detail in answer.json["detail"]
    answer = client.post(url, data="summary=x", headers=engineer)
    assert answer.status_code == 400 and "send a JSON object" in answer.json["detail"]
    assert (
        client.post(
            "/api/cases/99/resolve", json={"summary": SUMMARY}, headers=engineer
        ).status_code
        == 404
    )
    assert client.post(url, json={"summary": SUMMARY}, headers=engineer).status_code == 202
    again = client.post(url, json={"summary": SUMMARY}, headers=engineer)
    assert again.status_code == 409
    assert again.json == {
        "error": "illegal_transition",
        "detail": "a resolved case cannot become resolved; allowed: open, closed",
        "status": "resolved",
        "allowed": ["open", "closed"],
    }


@BOTH_DATABASES
def test_patch_edits_and_decides(api, written, engineer):
    client = api
    notes = written["ticket_notes"]
    url = f"/api/cases/1/outputs/{notes['id']}"
    edited = client.patch(url, json={"content": "# Notes\n\nShorter."}, headers=engineer)
    assert edited.status_code == 200
    assert (edited.json["content"], edited.json["edited"], edited.json["status"]) == (
        "# Notes\n\nShorter.",
        True,
        "draft",
    )
    approved = client.patch(url, json={"status": "approved"}, headers=engineer)
    assert approved.json["status"] == "approved" and approved.json["approved_by"].startswith(
        "engineer-"
    )
    conflict = client.patch(url, json={"status": "rejected"}, headers=engineer)
    assert conflict.status_code == 409 and conflict.json["error"] == "output_conflict"
    assert "already approved" in conflict.json["detail"]
    # Content and status together: the edit makes a draft, which is then decided.
    both = client.patch(
        url, json={"content": "# Notes\n\nFinal.", "status": "approved"}, headers=engineer
    )
    assert (both.json["status"], both.json["content"]) == ("approved", "# Notes\n\nFinal.")
    rejected = client.patch(
        f"/api/cases/1/outputs/{written['client_summary']['id']}",
        json={"status": "rejected"},
        headers=engineer,
    )
    assert rejected.json["status"] == "rejected" and rejected.json["approved_by"] is None
    types = [e["type"] for e in client.get("/api/cases/1", headers=engineer).json["events"]]
    assert types[-5:] == [
        "output.edited",
        "output.approved",
        "output.edited",
        "output.approved",
        "output.rejected",
    ]


def test_patch_refusals(api, written, engineer):
    client = api
    url = f"/api/cases/1/outputs/{written['kb_article']['id']}"
    cases = [
        ({}, 400, 'send {"content"', None),
        ({"title": "x"}, 400, "title: is not a field of this request", "title"),
        ({"status": "pushed"}, 400, "Input should be 'approved' or 'rejected'", "status"),
        ({"content": ""}, 400, "cannot be empty", None),
        ({"content": 5}, 400, "content: Input should be a valid string", "content"),
    ]
    for body, status, detail, field in cases:
        answer = client.patch(url, json=body, headers=engineer)
        assert answer.status_code == status, body
        assert detail in answer.json["detail"], answer.json
        assert answer.json.get("field") == field, answer.json
    assert (
        client.patch(
            "/api/cases/1/outputs/999", json={"status": "approved"}, headers=engineer
        ).status_code
        == 404
    )


@BOTH_DATABASES
def test_regenerate_through_the_api_keeps_edits_when_asked(api, written, engineer, drain):
    client = api
    notes = written["ticket_notes"]
    url = f"/api/cases/1/outputs/{notes['id']}"
    client.patch(url, json={"content": "Mine."}, headers=engineer)
    answer = client.post(f"{url}/regenerate", json={"keep_edits": True}, headers=engineer)
    assert answer.status_code == 202 and answer.json["status"] == "pending"
    assert client.get("/api/cases/1/outputs", headers=engineer).json["status"] == "pending"
    assert drain() == 0
    after = {
        o["kind"]: o for o in client.get("/api/cases/1/outputs", headers=engineer).json["outputs"]
    }
    assert len(after) == 3 and after["ticket_notes"]["id"] == notes["id"]
    assert after["ticket_notes"]["content"] == "Mine." and after["ticket_notes"]["edited"]
    assert after["ticket_notes"]["generated_content"] == notes["content"]
    assert (
        client.post(f"{url}/regenerate", headers=engineer).status_code == 202
    )  # no body: keep_edits false
    assert drain() == 0
    assert (
        client.get(url.rsplit("/", 1)[0], headers=engineer).json["outputs"][0]["content"]
        == notes["content"]
    )
    bad = client.post(f"{url}/regenerate", json={"keep_edits": "yes"}, headers=engineer)
    assert bad.status_code == 400 and bad.json["field"] == "keep_edits"
    assert bad.json["detail"] == "keep_edits: Input should be a valid boolean"


def test_write_again_endpoint(api, case_id, engineer, drain):
    client = api
    refused = client.post(f"/api/cases/{case_id}/outputs", headers=engineer)
    assert refused.status_code == 409 and "resolve it first" in refused.json["detail"]
    client.post(f"/api/cases/{case_id}/resolve", json={"summary": SUMMARY}, headers=engineer)
    assert client.post(f"/api/cases/{case_id}/outputs", headers=engineer).status_code == 202
    assert drain() == 0
    assert len(client.get(f"/api/cases/{case_id}/outputs", headers=engineer).json["outputs"]) == 3


def test_download_is_an_attachment_named_after_the_case_and_kind(
    api, written, viewer, viewer_client
):
    client = api
    for kind, output in written.items():
        answer = client.get(f"/api/cases/1/outputs/{output['id']}/download", headers=viewer)
        assert answer.status_code == 200
        assert answer.headers["Content-Disposition"] == f"attachment; filename=case-1-{kind}.md"
        assert answer.headers["Content-Type"] == "text/markdown; charset=utf-8"
        assert answer.get_data(as_text=True) == output["content"]
    console = viewer_client.get(f"/cases/1/outputs/{written['kb_article']['id']}/download")
    assert console.headers["Content-Disposition"] == "attachment; filename=case-1-kb_article.md"


def test_roles_viewers_read_engineers_write(api, anonymous_client, written, viewer):
    client = api
    oid = written["ticket_notes"]["id"]
    assert anonymous_client.get("/api/cases/1/outputs").status_code == 401
    assert anonymous_client.get("/api/cases/1/outputs").json["error"] == "unauthorized"
    assert client.get("/api/cases/1/outputs", headers=viewer).status_code == 200
    refused = [
        client.post("/api/cases/1/resolve", json={"summary": SUMMARY}, headers=viewer),
        client.patch(f"/api/cases/1/outputs/{oid}", json={"status": "approved"}, headers=viewer),
        client.post(f"/api/cases/1/outputs/{oid}/regenerate", json={}, headers=viewer),
        client.post("/api/cases/1/outputs", headers=viewer),
    ]
    for answer in refused:
        assert answer.status_code == 403
        assert answer.json["error"] == "forbidden" and "engineer role" in answer.json["detail"]


# --- Console ------------------------------------------------------------------------------------


def test_case_page_offers_the_resolve_form_to_engineers_only(
    app, engineer_client, viewer_client, case_id
):
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="outputs-panel"' in page and 'id="resolve"' in page
    assert 'name="summary"' in page
    viewer_page = viewer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="outputs-panel"' in viewer_page and 'id="resolve"' not in viewer_page
    assert "When an engineer resolves this case" in viewer_page


@BOTH_DATABASES
def test_console_resolve_shows_progress_then_tabs(app, engineer_client, case_id, drain):
    client = engineer_client
    empty = client.post(f"/cases/{case_id}/resolve", data={"summary": " "}, headers=HTMX)
    assert empty.status_code == 422
    assert "a resolution summary is required" in empty.get_data(as_text=True)
    answer = client.post(f"/cases/{case_id}/resolve", data={"summary": SUMMARY}, headers=HTMX)
    assert answer.status_code == 204 and answer.headers["HX-Refresh"] == "true"
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Writing the ticket notes, the knowledge-base article and the client summary" in page
    assert "Case resolved. The ticket notes" in page  # the flash
    poll = client.get(f"/cases/{case_id}/outputs?poll=1", headers=HTMX)
    assert 'hx-trigger="every 1500ms"' in poll.get_data(as_text=True)
    assert 'id="timeline"' not in poll.get_data(as_text=True)  # nothing new to show yet
    assert "HX-Request" in poll.headers["Vary"]
    assert drain() == 0
    done = client.get(f"/cases/{case_id}/outputs?poll=1", headers=HTMX).get_data(as_text=True)
    assert "hx-trigger" not in done  # polling stops
    assert 'role="tablist"' in done and done.count('role="tab"') == 3
    assert "<h2>Diagnostic steps</h2>" in done  # the Markdown rendered
    assert 'id="timeline" hx-swap-oob="true"' in done and "output.generated" in done
    # Another tab; no htmx: back to the case page.
    kb = client.get(f"/cases/{case_id}/outputs?tab=kb_article", headers=HTMX).get_data(as_text=True)
    assert 'aria-selected="true"\n       href="/cases/1?output=kb_article' in kb
    assert client.get(f"/cases/{case_id}/outputs").status_code == 302
    # Resolving again is refused inline.
    again = client.post(f"/cases/{case_id}/resolve", data={"summary": SUMMARY}, headers=HTMX)
    assert again.status_code == 422
    assert "a resolved case cannot become resolved; allowed: open, closed" in again.get_data(
        as_text=True
    )


def test_console_edit_approve_reject_regenerate(app, engineer_client, written, drain):
    client = engineer_client
    notes, summary = written["ticket_notes"], written["client_summary"]
    editor = client.get(
        f"/cases/1/outputs?tab=ticket_notes&edit={notes['id']}", headers=HTMX
    ).get_data(as_text=True)
    assert '<textarea name="content"' in editor
    refused = client.post(
        f"/cases/1/outputs/{notes['id']}/edit", data={"content": ""}, headers=HTMX
    )
    assert refused.status_code == 422 and "cannot be empty" in refused.get_data(as_text=True)
    saved = client.post(
        f"/cases/1/outputs/{notes['id']}/edit",
        data={"content": "# Mine\r\n\r\nEdited."},
        headers=HTMX,
    )
    html = saved.get_data(as_text=True)
    assert (
        saved.status_code == 200
        and "Ticket notes saved." in html
        and "<strong>edited</strong>" in html
    )
    assert "keep my edits" in html and "The writer's latest version, for comparison" in html
    approved = client.post(
        f"/cases/1/outputs/{notes['id']}/status", data={"status": "approved"}, headers=HTMX
    )
    assert "Ticket notes approved." in approved.get_data(as_text=True)
    assert "output.approved" in approved.get_data(as_text=True)  # the timeline, out of band
    twice = client.post(
        f"/cases/1/outputs/{notes['id']}/status", data={"status": "approved"}, headers=HTMX
    )
    assert twice.status_code == 422 and "already approved" in twice.get_data(as_text=True)
    rejected = client.post(
        f"/cases/1/outputs/{summary['id']}/status", data={"status": "rejected"}, headers=HTMX
    )
    assert "Client summary rejected." in rejected.get_data(as_text=True)
    regen = client.post(
        f"/cases/1/outputs/{notes['id']}/regenerate", data={"keep_edits": "1"}, headers=HTMX
    )
    assert "Rewriting…" in regen.get_data(as_text=True)
    assert drain() == 0
    with app.app_context():
        row = db.session.get(ResolutionOutput, notes["id"])
        assert (row.content, row.edited, row.status) == ("# Mine\n\nEdited.", True, "draft")
    # A plain form post (no htmx) redirects back to the case page, on the right tab.
    plain = client.post(f"/cases/1/outputs/{summary['id']}/regenerate", data={})
    assert (
        plain.status_code == 303
        and plain.headers["Location"] == "/cases/1?output=client_summary#outputs-panel"
    )


def test_viewers_see_outputs_but_no_buttons_and_cannot_post(app, viewer_client, written):
    html = viewer_client.get("/cases/1").get_data(as_text=True)
    assert 'role="tablist"' in html and "Download .md" in html and "Copy Markdown" in html
    assert "Approve" not in html and "Regenerate" not in html and ">Edit<" not in html
    oid = written["ticket_notes"]["id"]
    assert (
        viewer_client.post(
            f"/cases/1/outputs/{oid}/status", data={"status": "approved"}
        ).status_code
        == 403
    )
    assert viewer_client.post("/cases/1/resolve", data={"summary": SUMMARY}).status_code == 403


def test_console_posts_need_the_csrf_token(csrf_app, engineer_client, written):
    oid = written["ticket_notes"]["id"]
    answer = engineer_client.post(
        f"/cases/1/outputs/{oid}/status", data={"status": "approved"}, headers=HTMX
    )
    assert answer.status_code == 400
    with csrf_app.app_context():
        assert db.session.get(ResolutionOutput, oid).status == "draft"


def test_payload_html_is_escaped_in_the_panel(app, engineer_client, case_id, drain):
    with app.app_context():
        case = db.session.get(Case, case_id)
        case.title = "<script>alert(1)</script>"
        db.session.commit()
    engineer_client.post(
        f"/cases/{case_id}/resolve", data={"summary": "<img src=x onerror=alert(2)>"}
    )
    assert drain() == 0
    html = engineer_client.get(f"/cases/{case_id}/outputs?poll=1", headers=HTMX).get_data(
        as_text=True
    )
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_resolving_while_redis_is_down_still_gets_the_outputs_written(
    app, engineer_client, case_id, redis_url
):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    answer = engineer_client.post(f"/cases/{case_id}/resolve", data={"summary": SUMMARY})
    assert answer.status_code == 303
    app.config["REDIS_URL"] = redis_url
    # The task is a row committed with the resolution; only its wake-up was lost.
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Writing the ticket notes" in page
    with app.app_context():
        assert run_due() == 1  # what the supervisor does for a task nobody woke
    assert 'role="tablist"' in engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
