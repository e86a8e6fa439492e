"""The case page in the system Chromium: the incident first (above the actions toolbar), the
timeline newest first, and the toolbar's forms reachable from the keyboard (a shortcut opens
the handoff modal on the right intent; a disclosure opens with Enter and its fields follow
in tab order). CSP violations fail the test (``browser_page``)."""

from __future__ import annotations

from app.cases.models import Case
from app.extensions import db
from tests import test_browser
from tests.test_browser import _post_fixture, _sign_in

browser_page, live_server = test_browser.browser_page, test_browser.live_server  # fixtures


def test_incident_first_timeline_newest_first_and_toolbar_by_keyboard(
    app, live_server, browser_page, client, github, drain
):
    page = browser_page
    _post_fixture(live_server, github, "issues.opened")
    assert drain() == 0
    _post_fixture(live_server, github, "issue_comment.created")  # the same issue: an update
    assert drain() == 0
    with app.app_context():
        case_id = db.session.scalar(db.select(Case.id))
    _sign_in(page, live_server, "admin@example.com", f"/cases/{case_id}")

    # The incident: the source's own words, above the toolbar.
    incident = page.locator("#incident")
    assert "accidently spelled 'commit'" in incident.inner_text()
    assert "Codertocat" in incident.locator(".incident-fields").inner_text()
    toolbar = page.get_by_role("toolbar")
    assert incident.bounding_box()["y"] < toolbar.bounding_box()["y"]
    assert page.locator("#case-head").bounding_box()["y"] < incident.bounding_box()["y"]

    # The timeline, newest first, in sentences; the raw type and the UTC time on hover.
    events = page.locator("#timeline > li")
    types = events.evaluate_all("all => all.map(e => e.dataset.type)")
    assert types == ["case.updated", "case.opened"]
    assert events.last.inner_text().startswith("GitHub opened the case")
    assert events.last.get_attribute("title").startswith("case.opened (issues.opened) · ")
    assert events.last.get_attribute("title").endswith(" UTC")

    # e (escalate) opens the handoff modal on "Escalate"; Escape closes it.
    page.locator("body").press("e")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert dialog.locator("input[name=intent][value=escalate]").is_checked()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    # More…: Enter on its summary opens it; Tab reaches its fields; the form works by keys.
    toolbar.locator("summary", has_text="More…").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "assign-user"
    severity = page.get_by_label("Set the severity")
    severity.focus()
    severity.select_option("critical")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.locator("#case-severity", has_text="critical").wait_for()
    # The disclosure stays open for the next change; the timeline says what happened, on top.
    assert toolbar.locator("details[data-tool=more]").get_attribute("open") is not None
    first = page.locator("#timeline > li").first
    assert first.get_attribute("data-type") == "case.severity_changed"
    assert "changed the severity from info to critical" in first.inner_text()
