"""``/api/cases/<id>/branches`` and ``/api/attachments/<id>``: every endpoint, its refusals
(401, 403, 404, 400, 409, 413) as ``{"error", "detail"}``, and downloads that never render."""

from __future__ import annotations

import io

import pytest

from app.branches.service import ensure_root
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.tasks import run_due
from tests.conftest import BOTH_DATABASES

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.fixture
def api(app, api_token, tmp_path):
    """``api.get/post/patch(path, ...)`` with an engineer's bearer token; ``api.viewer`` with
    a viewer's; ``api.case_id`` an open case."""
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    with app.app_context():
        case = Case(title="Checkout webhooks fail with 502", provider="github")
        db.session.add(case)
        db.session.commit()
        ensure_root(case)  # as the case.opened subscriber does
        db.session.commit()
        case_id = case.id

    class Api:
        def __init__(self, token: str):
            self.client = app.test_client()
            self.headers = {"Authorization": f"Bearer {token}"}
            self.case_id = case_id
            self.app = app

        def __getattr__(self, method):
            def call(path, **kwargs):
                headers = {**self.headers, **kwargs.pop("headers", {})}
                return getattr(self.client, method)(path, headers=headers, **kwargs)

            return call

    engineer = Api(api_token("engineer"))
    engineer.viewer = Api(api_token("viewer"))
    return engineer


def url(api, suffix: str = "") -> str:
    return f"/api/cases/{api.case_id}/branches{suffix}"


def fork(api, *labels: str, reason: str = "Three suspects for the 502s"):
    answer = api.post(
        url(api, "/fork"),
        json={"reason": reason,
              "options": [{"label": label, "description": f"is it {label}?"} for label in labels]},
    )  # fmt: skip
    assert answer.status_code == 201, answer.get_json()
    return [child["id"] for child in answer.get_json()["children"]]


def assert_error(answer, status: int, *words: str, field: str | None = None) -> dict:
    """The uniform refusal: ``{"error", "detail", "field"?}``, ``field`` naming the input at
    fault when one is."""
    assert answer.status_code == status, answer.get_data(as_text=True)
    body = answer.get_json()
    assert {"error", "detail"} <= set(body) <= {"error", "detail", "field"}
    for word in words:
        assert word in body["detail"]
    assert body.get("field") == field
    return body


# --- Reading --------------------------------------------------------------------------------


@BOTH_DATABASES
def test_get_branches_gives_the_tree_and_the_active_branch(api):
    answer = api.viewer.get(url(api))
    assert answer.status_code == 200
    body = answer.get_json()
    root = body["tree"]
    assert (root["label"], root["status"], root["is_root"], root["active"]) == (
        "Root", "active", True, True)  # fmt: skip
    assert root["children"] == []
    assert body["active_branch_id"] == root["id"]
    assert (body["branch_count"], body["branch_limit"]) == (1, 25)
    assert body["active_branch"]["notes"] == [] and body["active_branch"]["siblings"] == []
    # Asking again does not make a second root.
    assert api.viewer.get(url(api)).get_json()["tree"]["id"] == root["id"]


@BOTH_DATABASES
def test_fork_then_the_tree_shows_the_hypotheses(api, app):
    children = fork(api, "Load balancer", "App server", "Database")
    body = api.get(url(api)).get_json()
    tree = body["tree"]
    assert [c["label"] for c in tree["children"]] == ["Load balancer", "App server", "Database"]
    assert [c["id"] for c in tree["children"]] == children
    first = tree["children"][0]
    assert (first["status"], first["badge"], first["parent_id"]) == (
        "untried",
        "untried",
        tree["id"],
    )
    assert first["fork_reason"] == "Three suspects for the 502s"
    assert first["description"] == "is it Load balancer?"
    assert [b["label"] for b in body["branches"]] == ["Root", "Load balancer", "App server",
                                                      "Database"]  # fmt: skip
    with app.app_context():
        event = db.session.scalar(db.select(CaseEvent).where(CaseEvent.type == "branch.forked"))
        assert event.actor.startswith("engineer-")


def test_get_one_branch_with_notes_and_siblings(api):
    lb, app_server, _ = fork(api, "LB", "App", "DB")
    api.patch(url(api, f"/{app_server}"), json={"status": "dead_end", "reason": "app logs clean"})
    api.post(url(api, f"/{lb}/notes"), json={"text": "LB health checks flap"})
    body = api.viewer.get(url(api, f"/{lb}")).get_json()
    assert body["label"] == "LB" and body["note_count"] == 1
    assert body["notes"][0]["text"] == "LB health checks flap"
    assert [s["label"] for s in body["siblings"]] == ["App", "DB"]  # dead ends first
    assert body["siblings"][0]["reason"] == "app logs clean"


# --- Fork -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words", "field"),
    [
        ({"reason": "x", "options": [{"label": "only"}]}, ["2 to 10 hypotheses; 1 given"], None),
        (
            {"reason": "x", "options": [{"label": "A"}, {"label": ""}]},
            ["hypothesis 2 has no label"],
            None,
        ),
        ({"reason": "x", "options": [{"label": "A"}, {"label": "a"}]}, ["labelled 'a'"], None),
        ({"options": [{"label": "A"}, {"label": "B"}]}, ["reason: Field required"], "reason"),
        ({"reason": "x"}, ["options: Field required"], "options"),
        (
            {"reason": 3, "options": [{"label": "A"}, {"label": "B"}]},
            ["reason: Input should be a valid string"],
            "reason",
        ),
        (
            {"reason": "x", "options": [{"label": "A"}, {"label": "B", "colour": "red"}]},
            ["options.1.colour: is not a field"],
            "options.1.colour",
        ),
    ],
)
def test_fork_bad_input_is_400(api, body, words, field):
    assert_error(api.post(url(api, "/fork"), json=body), 400, *words, field=field)


def test_fork_needs_a_json_object(api):
    assert_error(api.post(url(api, "/fork"), data="nope"), 400, "JSON object")
    assert_error(api.post(url(api, "/fork"), json=["a", "b"]), 400, "JSON object")


def test_fork_over_the_branch_limit_is_409(api, app):
    app.config["BRANCH_LIMIT"] = 5
    fork(api, "A", "B", "C")
    body = assert_error(
        api.post(url(api, "/fork"), json={"reason": "more", "options": [{"label": "D"},
                                                                         {"label": "E"}]}),
        409,
        "at most 5 branches",
        "has 4",
    )  # fmt: skip
    assert body["error"] == "branch_conflict"


# --- Switch ---------------------------------------------------------------------------------


@BOTH_DATABASES
def test_switch_and_its_refusals(api):
    lb, app_server = fork(api, "LB", "App")
    answer = api.post(url(api, f"/{lb}/switch"))
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["branch"]["active"] and body["branch"]["status"] == "active"
    assert body["previous_branch_id"] == api.get(url(api)).get_json()["tree"]["id"]
    assert_error(api.post(url(api, f"/{lb}/switch")), 409, "already the active branch")
    api.patch(url(api, f"/{app_server}"), json={"status": "dead_end", "reason": "clean"})
    assert_error(api.post(url(api, f"/{app_server}/switch")), 409, "revive it first")


# --- Status ---------------------------------------------------------------------------------


@BOTH_DATABASES
def test_patch_status_dead_end_then_solved_offers_resolve(api):
    lb, app_server = fork(api, "LB", "App")
    answer = api.patch(url(api, f"/{lb}"), json={"status": "dead_end", "reason": "LB is fine"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["branch"]["status"], body["branch"]["reason"]) == ("dead_end", "LB is fine")
    assert body["offer_resolve"] is False and body["resolve_url"] is None
    body = api.patch(
        url(api, f"/{app_server}"), json={"status": "solved", "reason": "raised the pool size"}
    ).get_json()
    assert body["offer_resolve"] is True
    assert body["resolve_url"] == f"/api/cases/{api.case_id}/resolve"
    assert body["branch"]["badge"] == "solved"


def test_patch_refusals(api):
    lb, app_server = fork(api, "LB", "App")
    assert_error(api.patch(url(api, f"/{lb}"), json={"status": "solved"}), 400,
                 "reason is required")  # fmt: skip
    assert_error(api.patch(url(api, f"/{lb}"), json={"status": "meh", "reason": "x"}), 400,
                 "'dead_end' or 'solved'", field="status")  # fmt: skip
    assert_error(api.patch(url(api, f"/{lb}"), json={"reason": "x"}), 400, "status: Field required",
                 field="status")  # fmt: skip
    api.patch(url(api, f"/{lb}"), json={"status": "solved", "reason": "x"})
    assert_error(api.patch(url(api, f"/{app_server}"), json={"status": "solved", "reason": "y"}),
                 409, "'LB' is already solved")  # fmt: skip


# --- Revive ---------------------------------------------------------------------------------


@BOTH_DATABASES
def test_revive_a_dead_end(api):
    lb, app_server = fork(api, "LB", "App")
    assert_error(
        api.post(url(api, f"/{lb}/revive"),
                 json={"evidence_from_branch_id": app_server, "evidence": "x"}),
        409, "only a dead end can be revived",
    )  # fmt: skip
    api.patch(url(api, f"/{lb}"), json={"status": "dead_end", "reason": "LB is fine"})
    assert_error(api.post(url(api, f"/{lb}/revive"), json={"evidence": "x"}), 400,
                 "evidence_from_branch_id: Field required",
                 field="evidence_from_branch_id")  # fmt: skip
    assert_error(api.post(url(api, f"/{lb}/revive"),
                          json={"evidence_from_branch_id": True, "evidence": "x"}), 400,
                 "evidence_from_branch_id must be a whole number",
                 field="evidence_from_branch_id")  # fmt: skip
    assert_error(api.post(url(api, f"/{lb}/revive"),
                          json={"evidence_from_branch_id": app_server}), 400,
                 "evidence is required")  # fmt: skip
    assert_error(api.post(url(api, f"/{lb}/revive"),
                          json={"evidence_from_branch_id": 999, "evidence": "x"}), 404,
                 "no branch 999")  # fmt: skip
    answer = api.post(
        url(api, f"/{lb}/revive"),
        json={"evidence_from_branch_id": app_server, "evidence": "App logs show LB resets"},
    )
    assert answer.status_code == 200
    branch = answer.get_json()["branch"]
    assert (branch["status"], branch["badge"], branch["revived"]) == ("active", "revived", True)
    assert branch["revived_from_id"] == app_server
    assert branch["revival_evidence"] == "App logs show LB resets"


# --- Notes and attachments ------------------------------------------------------------------


@BOTH_DATABASES
def test_json_note(api):
    root = api.get(url(api)).get_json()["tree"]["id"]
    answer = api.post(url(api, f"/{root}/notes"), json={"text": "Saw 502s *only* on POST"})
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["note"]["text"] == "Saw 502s *only* on POST"
    assert body["note"]["author"].startswith("engineer-")
    assert body["note"]["attachments"] == []
    assert body["branch"]["note_count"] == 1
    # The summary is written by a task after the note commits; the API says so.
    assert body["branch"]["summary"] == "" and body["branch"]["summary_task"]["status"] == "queued"
    with api.app.app_context():
        assert run_due() == 1
    branch = api.get(url(api)).get_json()["tree"]
    assert "only" in branch["summary"] and branch["summary_task"]["status"] == "succeeded"
    assert_error(api.post(url(api, f"/{root}/notes"), json={"text": " "}), 400, "needs text")


def test_multipart_note_with_files_and_downloads(api):
    root = api.get(url(api)).get_json()["tree"]["id"]
    answer = api.post(
        url(api, f"/{root}/notes"),
        data={
            "text": "nginx config and a screenshot",
            "files": [
                (io.BytesIO(b"upstream app { server 10.0.0.5; }\n"), "nginx.conf"),
                (io.BytesIO(PNG), "502.png", "image/png"),
                (io.BytesIO(b"<html><script>alert(1)</script></html>"), "page.html", "text/html"),
                (io.BytesIO(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
                 "x.svg", "image/svg+xml"),
                (io.BytesIO(b"\x00\x01\x02binary"), "core.dump", "application/x-core"),
            ],
        },
        content_type="multipart/form-data",
    )  # fmt: skip
    assert answer.status_code == 201, answer.get_json()
    conf, png, html, svg, dump = answer.get_json()["note"]["attachments"]
    assert (conf["filename"], conf["is_text"], conf["size"]) == ("nginx.conf", True, 34)
    assert (png["content_type"], png["is_text"]) == ("image/png", False)

    download = api.viewer.get(conf["url"])
    assert download.status_code == 200
    assert download.data == b"upstream app { server 10.0.0.5; }\n"
    assert download.headers["Content-Disposition"] == "attachment; filename=nginx.conf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "sandbox" in download.headers["Content-Security-Policy"]

    assert api.viewer.get(png["url"]).headers["Content-Type"] == "image/png"
    for page in (html, svg):  # never rendered as a page or an image with scripts
        served = api.viewer.get(page["url"])
        assert served.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert served.headers["Content-Disposition"].startswith("attachment;")
    assert api.viewer.get(dump["url"]).headers["Content-Type"] == "application/octet-stream"

    # The writer's context has the text of the text files.
    body = api.get(url(api, f"/{root}")).get_json()
    assert body["notes"][0]["attachments"][0]["filename"] == "nginx.conf"


def test_attachment_over_the_limit_is_413(api, app):
    app.config["ATTACHMENT_MAX_BYTES"] = 100
    root = api.get(url(api)).get_json()["tree"]["id"]
    answer = api.post(
        url(api, f"/{root}/notes"),
        data={"text": "big", "files": [(io.BytesIO(b"x" * 101), "big.log")]},
        content_type="multipart/form-data",
    )
    body = assert_error(answer, 413, "big.log is over the 100 bytes limit")
    assert body["error"] == "attachment_too_large"
    assert api.get(url(api, f"/{root}")).get_json()["notes"] == []


def test_a_request_over_the_body_limit_is_413_saying_both_limits(api, app):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    root = api.get(url(api)).get_json()["tree"]["id"]
    answer = api.post(
        url(api, f"/{root}/notes"),
        data={"text": "huge", "files": [(io.BytesIO(b"x" * 4096), "huge.log")]},
        content_type="multipart/form-data",
    )
    assert_error(answer, 413, "over the 2 KiB limit for a whole request", "up to 10 MiB")


def test_unknown_attachment_and_missing_file_are_404(api, app, tmp_path):
    assert_error(api.viewer.get("/api/attachments/404"), 404, "no attachment 404")
    root = api.get(url(api)).get_json()["tree"]["id"]
    answer = api.post(
        url(api, f"/{root}/notes"),
        data={"files": [(io.BytesIO(b"x"), "a.txt")]},
        content_type="multipart/form-data",
    )
    attachment = answer.get_json()["note"]["attachments"][0]
    for stored in (tmp_path / "attachments").rglob("*"):
        if stored.is_file():
            stored.unlink()
    assert_error(api.viewer.get(attachment["url"]), 404, "missing from storage")


# --- Who may -------------------------------------------------------------------------------


def test_viewers_read_but_may_not_work_branches(api):
    (lb, _) = fork(api, "LB", "App")
    viewer = api.viewer
    assert viewer.get(url(api)).status_code == 200
    for answer in (
        viewer.post(url(api, "/fork"), json={"reason": "x", "options": [{"label": "A"},
                                                                         {"label": "B"}]}),
        viewer.post(url(api, f"/{lb}/switch")),
        viewer.patch(url(api, f"/{lb}"), json={"status": "dead_end", "reason": "x"}),
        viewer.post(url(api, f"/{lb}/revive"), json={"evidence_from_branch_id": lb,
                                                     "evidence": "x"}),
        viewer.post(url(api, f"/{lb}/notes"), json={"text": "x"}),
    ):  # fmt: skip
        assert_error(answer, 403, "engineer role")


def test_anonymous_is_401_and_unknown_things_are_404(api, app):
    anonymous = app.test_client()
    assert_error(anonymous.get(url(api)), 401)
    assert_error(anonymous.post(url(api, "/fork"), json={}), 401)
    assert_error(api.get("/api/cases/999/branches"), 404, "no case 999")
    assert_error(api.post(url(api, "/999/switch")), 404, f"case #{api.case_id} has no branch 999")
    with app.app_context():
        other = Case(title="Other", provider="github")
        db.session.add(other)
        db.session.commit()
        ensure_root(other)  # as the case.opened subscriber does
        db.session.commit()
        other_id = other.id
    other_root = api.get(f"/api/cases/{other_id}/branches").get_json()["tree"]["id"]
    # A branch of another case is not found under this case.
    assert_error(api.post(url(api, f"/{other_root}/notes"), json={"text": "x"}), 404)


def test_resolved_case_refuses_branch_work_with_409(api, app):
    (lb, _) = fork(api, "LB", "App")
    with app.app_context():
        db.session.get(Case, api.case_id).status = "resolved"
        db.session.commit()
    assert_error(api.post(url(api, f"/{lb}/notes"), json={"text": "late"}), 409,
                 "is resolved; reopen it")  # fmt: skip
    assert api.viewer.get(url(api)).status_code == 200


def test_session_writes_need_the_csrf_token(csrf_app, engineer_client, api):
    answer = engineer_client.post(
        url(api, "/fork"), json={"reason": "x", "options": [{"label": "A"}, {"label": "B"}]}
    )
    assert_error(answer, 400, "X-CSRFToken")
