"""The live console in the system Chromium: a case page follows deliveries and another
engineer's actions without a reload and without touching what someone is typing; its poll
rests while the tab is hidden; relative times tick with local time on hover; the case table
counts new cases in the title of a hidden tab, marks them and raises desktop notifications
for critical ones when the user turned them on.

Hidden tabs: headless Chromium keeps every page visible, so the tests set what the page
reads (``document.visibilityState``) and send the real ``visibilitychange`` event.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from playwright.sync_api import expect

from app.accounts.models import User
from app.cases.models import Case
from app.extensions import db
from tests import test_browser
from tests.conftest import BOTH_DATABASES
from tests.test_browser import REPORT_BLOCKED, _post_fixture, _sign_in
from tests.test_case_actions import make_case

browser_page, live_server = test_browser.browser_page, test_browser.live_server  # fixtures

SET_VISIBILITY = """(state) => {
  Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
  Object.defineProperty(document, "hidden", {value: state === "hidden", configurable: true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def _only_case(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(Case.id))


def _second_browser_page(page):
    """Another signed-out browser context (its own cookies) in the same Chromium."""
    context = page.context.browser.new_context()
    other = context.new_page()
    other.set_default_timeout(15_000)
    other.add_init_script(REPORT_BLOCKED)
    other.on("pageerror", lambda error: page.csp_violations.append(f"second page: {error}"))
    other.on(
        "console",
        lambda m: m.type == "error" and "CSP" in m.text and page.csp_violations.append(m.text),
    )
    return other


@BOTH_DATABASES
def test_case_page_follows_deliveries_and_another_engineer_keeping_what_is_typed(
    app, live_server, browser_page, github, drain, make_user
):
    make_user("engineer", "ann@example.com")
    make_user("engineer", "bob@example.com")
    _post_fixture(live_server, github, "issues.opened")
    assert drain() == 0
    case_id = _only_case(app)

    page = browser_page
    _sign_in(page, live_server, "ann@example.com", f"/cases/{case_id}")
    expect(page.locator("#case-deliveries .count")).to_have_text("1")

    # Ann starts typing tags (under More…) and does not send them.
    page.locator("#case-actions summary", has_text="More").click()
    tags = page.locator("#case-actions input[name=tags]")
    tags.fill("db, typed-not-sent")
    page.evaluate("window.annField = document.querySelector('#case-actions input[name=tags]')")

    # She opens the raw delivery below the deliveries table.
    page.locator("#case-deliveries tbody a").first.click()
    expect(page.locator("#delivery-view")).not_to_be_empty()
    raw = page.locator("#delivery-view").inner_text()
    tags.focus()

    # A delivery arrives (the real route, a real worker): the page follows by itself.
    _post_fixture(live_server, github, "issues.edited")
    assert drain() == 0
    expect(page.locator("#case-deliveries .count")).to_have_text("2", timeout=10_000)
    expect(page.locator("#case-deliveries tbody tr")).to_have_count(2)
    expect(page.locator('#timeline [data-type="case.updated"]').first).to_be_attached()
    assert page.locator("#delivery-view").inner_text() == raw  # kept across the swap

    # Bob acknowledges from his own browser.
    other = _second_browser_page(page)
    _sign_in(other, live_server, "bob@example.com", f"/cases/{case_id}")
    other.locator("#case-actions").get_by_role("button", name="Acknowledge").click()
    expect(other.locator("#case-ack")).to_contain_text("bob@example.com")

    expect(page.locator("#case-ack")).to_contain_text("bob@example.com", timeout=10_000)
    expect(page.locator('#timeline [data-type="case.acknowledged"]')).to_be_attached()
    # Ann's field is the same element, with her text and her focus; her actions panel still
    # offers Acknowledge (it is refreshed once she lets go of it).
    assert page.evaluate("document.contains(window.annField)")
    assert tags.input_value() == "db, typed-not-sent"
    assert page.evaluate("document.activeElement === window.annField")
    ack = page.locator("#case-actions").get_by_role("button", name="Acknowledge")
    assert ack.count() == 1

    # She clears the field and clicks elsewhere: the held panel catches up.
    tags.fill("")
    page.locator("h1").click()
    expect(ack).to_have_count(0, timeout=10_000)
    other.context.close()


def test_case_poll_rests_while_the_tab_is_hidden_and_catches_up(
    app, live_server, browser_page, make_user
):
    make_user("engineer", "ann@example.com")
    case_id = make_case(app, "Disk full on db-1")
    page = browser_page
    _sign_in(page, live_server, "ann@example.com", f"/cases/{case_id}")
    polls: list[str] = []
    page.on("request", lambda r: "since=" in r.url and polls.append(r.url))
    page.wait_for_timeout(2_500)
    assert polls, "the case page does not poll"

    page.evaluate(SET_VISIBILITY, "hidden")
    page.wait_for_timeout(300)  # a request already on its way may still go
    polls.clear()
    with app.app_context():
        db.session.get(Case, case_id).title = "Disk full on db-2"
        db.session.get(Case, case_id).updated_at = datetime.now(UTC)
        db.session.commit()
    page.wait_for_timeout(2_500)
    assert polls == []
    expect(page.locator("#case-head h1")).to_contain_text("db-1")

    page.evaluate(SET_VISIBILITY, "visible")
    expect(page.locator("#case-head h1")).to_contain_text("db-2", timeout=1_000)


def test_relative_times_tick_and_show_local_time_and_utc(app, live_server, browser_page, make_user):
    make_user("viewer", "vic@example.com")
    case_id = make_case(app)
    page = browser_page
    page.clock.install()
    _sign_in(page, live_server, "vic@example.com", f"/cases/{case_id}")
    opened = page.locator("#case-head time[data-relative]").first
    expect(opened).to_have_text("just now")
    title = opened.get_attribute("title")
    assert "(your time)" in title and title.endswith(" UTC"), title

    page.clock.fast_forward("30:00")
    expect(opened).to_have_text("30 min ago")
    page.clock.fast_forward("02:00:00")
    expect(opened).to_have_text("3 h ago")


def test_case_table_counts_new_cases_in_a_hidden_tab_and_notifies_critical_ones(
    app, live_server, browser_page, github, drain, make_user
):
    ops = make_user("engineer", "ops@example.com")
    with app.app_context():
        db.session.get(User, ops).notify_desktop = True
        db.session.commit()
    _post_fixture(live_server, github, "issues.opened")
    assert drain() == 0
    page = browser_page
    page.context.grant_permissions(["notifications"], origin=live_server)
    # Record what the page asks the desktop to show (the real Notification still runs).
    page.add_init_script("""
      window.shown = [];
      const Real = window.Notification;
      window.Notification = class extends Real {
        constructor(title, options) { window.shown.push(title); super(title, options); }
      };
    """)
    _sign_in(page, live_server, "ops@example.com")
    page.locator("tr[data-case-id]").first.wait_for()
    expect(page).to_have_title("Cases · Casehook")
    assert page.locator("tr.is-new").count() == 0

    page.evaluate(SET_VISIBILITY, "hidden")
    _post_fixture(live_server, github, "pull_request.opened")
    assert drain() == 0
    critical = make_case(app, "Checkout API answers 502", severity="critical")
    expect(page).to_have_title("(2) Cases · Casehook", timeout=10_000)
    assert page.locator("tr.is-new").count() == 2
    assert page.evaluate("window.shown") == [f"#{critical} Checkout API answers 502"]

    # Back to the tab: the title is plain again; the new rows stay marked a while.
    page.evaluate(SET_VISIBILITY, "visible")
    expect(page).to_have_title("Cases · Casehook")
    time.sleep(1.5)  # a poll or two re-render the rows
    assert page.locator(f'tr.is-new[data-case-id="{critical}"]').count() == 1


def test_desktop_notifications_setting_asks_the_browser_when_turned_on(
    app, live_server, browser_page, make_user
):
    make_user("viewer", "vic@example.com")
    page = browser_page
    page.context.grant_permissions(["notifications"], origin=live_server)
    _sign_in(page, live_server, "vic@example.com", "/account")
    page.get_by_label("Desktop notifications").check()
    expect(page.locator("#notify-permission")).to_have_text("Browser permission: granted.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Desktop notifications are on")
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(email="vic@example.com"))
        assert user.notify_desktop is True
    page.goto(live_server + "/cases")
    assert page.locator("#case-table").get_attribute("data-notify-desktop") == "on"
