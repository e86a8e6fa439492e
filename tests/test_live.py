"""The live console without a browser: the case page's versioned poll (204 when nothing
changed, after one cheap statement; the page's content otherwise), what moves the version,
relative times marked for the browser to tick, and the desktop notification setting."""

from __future__ import annotations

import re

from sqlalchemy import text

from app.accounts.models import User
from app.branches.service import branches_of, fork
from app.cases import service
from app.cases.models import Case
from app.cases.queries import case_version
from app.extensions import db
from tests.conftest import BOTH_DATABASES, fixture_payload
from tests.test_case_actions import make_case
from tests.test_console_scale import plan, statements

HTMX = {"HX-Request": "true"}


def _version(app, case_id: int) -> str:
    with app.app_context():
        return case_version(case_id)


def _case_from_github(github, drain) -> int:
    assert github.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    with github.app.app_context():
        return db.session.scalar(db.select(Case.id))


@BOTH_DATABASES
def test_poll_answers_204_until_something_changes_then_the_content(app, client, github, drain):
    case_id = _case_from_github(github, drain)
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "HX-Request" in page.headers["Vary"]
    html = page.get_data(as_text=True)
    version = _version(app, case_id)
    assert f'data-version="{version}"' in html
    assert "<html" in html

    poll = client.get(f"/cases/{case_id}?since={version}", headers=HTMX)
    assert poll.status_code == 204
    assert poll.get_data() == b""
    assert "HX-Request" in poll.headers["Vary"]
    # Without htmx the same URL is the page (a bookmarked ?since= is no dead end), and so
    # is an htmx request that is not the poll (one redirected here after an action).
    assert "<html" in client.get(f"/cases/{case_id}?since={version}").get_data(as_text=True)
    assert "<html" in client.get(f"/cases/{case_id}", headers=HTMX).get_data(as_text=True)

    # A delivery for the same issue: the version moves; the poll answers the content,
    # without the layout, carrying the new version and the new delivery.
    assert github.send("issues", fixture_payload("issues.edited")).status_code == 202
    assert drain() == 0
    moved = _version(app, case_id)
    assert moved != version
    answer = client.get(f"/cases/{case_id}?since={version}", headers=HTMX)
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert "<html" not in body and 'class="topbar"' not in body
    assert f'data-version="{moved}"' in body
    assert 'id="case-deliveries"' in body and 'id="timeline"' in body
    assert body.count("issues.edited") >= 1 or "edited" in body
    assert client.get(f"/cases/{case_id}?since={moved}", headers=HTMX).status_code == 204


@BOTH_DATABASES
def test_every_kind_of_change_moves_the_version(app, make_user):
    engineer = make_user("engineer", "eng@example.com")
    case_id = make_case(app)
    seen = {_version(app, case_id)}
    with app.app_context():
        case, user = db.session.get(Case, case_id), db.session.get(User, engineer)
        service.handle(case, "acknowledge", actor=user)
        db.session.commit()
    seen.add(_version(app, case_id))
    with app.app_context():
        case = db.session.get(Case, case_id)
        fork(case, "Which deploy?", [{"label": "Bad deploy"}, {"label": "Bad config"}])
        db.session.commit()
        assert len(branches_of(case)) == 3
    seen.add(_version(app, case_id))
    with app.app_context():
        case, user = db.session.get(Case, case_id), db.session.get(User, engineer)
        service.handle(case, "tag", actor=user, tags="db")
        db.session.commit()
    seen.add(_version(app, case_id))
    assert len(seen) == 4
    assert _version(app, case_id + 1000) is None


@BOTH_DATABASES
def test_version_check_is_a_fixed_few_statements_whatever_the_events(
    app, client, github, drain, database_url
):
    case_id = _case_from_github(github, drain)

    def poll_statements() -> list:
        version = _version(app, case_id)
        with statements(app) as seen:
            assert client.get(f"/cases/{case_id}?since={version}", headers=HTMX).status_code == 204
        return seen

    few = poll_statements()
    edited = fixture_payload("issues.edited")
    for _ in range(15):
        github.send("issues", edited)
    assert drain() == 0
    many = poll_statements()
    versions = [(sql, args) for sql, args in many if "case_events" in sql]
    # The signed-in user, then the version: one statement, whatever the number of events.
    assert len(many) == len(few) <= 2, [sql for sql, _ in many]
    assert len(versions) == 1
    if database_url.startswith("sqlite"):
        sql, parameters = versions[0]
        assert "ix_case_events_case_seq" in plan(app, sql, parameters)
    else:
        with app.app_context():
            indexes = db.session.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_case_events_case_seq'")
            )
        assert indexes and "(case_id, seq)" in indexes


def test_an_unknown_case_is_a_404_that_says_so(client):
    answer = client.get("/cases/999?since=x", headers=HTMX)
    assert answer.status_code == 404
    assert "there is no case 999" in answer.get_data(as_text=True)


def test_relative_times_are_marked_for_the_browser(app, client):
    case_id = make_case(app)
    html = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "data-relative>just now</time>" in html


def _desktop_box(html: str) -> str:
    return re.search(r'<input[^>]*name="desktop"[^>]*>', html).group(0)


def test_desktop_notifications_setting(app, client):
    page = client.get("/account").get_data(as_text=True)
    assert 'data-ask-notification="notify-permission"' in _desktop_box(page)
    assert "checked" not in _desktop_box(page)
    assert 'data-notify-desktop="off"' in client.get("/cases").get_data(as_text=True)

    answer = client.post("/account/notifications", data={"desktop": "y"})
    assert answer.status_code == 303
    page = client.get("/account").get_data(as_text=True)
    assert "Desktop notifications are on" in page
    assert "checked" in _desktop_box(page)
    assert 'data-notify-desktop="on"' in client.get("/cases").get_data(as_text=True)

    assert client.post("/account/notifications", data={}).status_code == 303
    with app.app_context():
        on = db.select(User.notify_desktop).filter_by(email="admin@example.com")
        assert db.session.scalar(on) is False


def test_notification_setting_without_csrf_is_refused_with_the_reason(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    answer = client.post("/account/notifications", data={"desktop": "y"})
    assert answer.status_code in (400, 422)
    assert "CSRF" in answer.get_data(as_text=True)
    with app.app_context():
        on = db.select(User.notify_desktop).filter_by(email="admin@example.com")
        assert db.session.scalar(on) is False
