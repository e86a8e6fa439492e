"""The console under its Content-Security-Policy, in the system Chromium: the main pages
load with nothing blocked, and what used to be inline script (static/console.js) still works:
the table's poll and its pause, select-all, panels reloading on case-changed, the handoff
modal's Escape and Cancel, the jump to the resolve form."""

from __future__ import annotations

import pytest

from tests.test_browser import (  # noqa: F401 (browser_page and live_server are fixtures)
    _post_fixture,
    _sign_in,
    browser_page,
    live_server,
)

pytestmark = pytest.mark.browser


def test_main_pages_and_their_scripts_work_under_the_csp(
    app,
    make_user,
    github,
    drain,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
):
    page, base = browser_page, live_server
    make_user("admin", "lead@example.com")
    _sign_in(page, base, "lead@example.com", "/cases")
    assert page.evaluate("htmx.config.allowEval") is False
    assert page.evaluate("htmx.config.historyRestoreAsHxRequest") is False  # meta config read

    _post_fixture(base, github, "issues.opened")
    _post_fixture(base, github, "pull_request.opened")
    assert drain() == 0
    page.locator("tr[data-case-id]").nth(1).wait_for()  # the poll brought both rows

    # Select-all ticks every row, and the poll pauses while rows are ticked.
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "since=" in r.url else None)
    page.get_by_label("Select every case on this page").check()
    boxes = page.locator("#case-table input[name=case_id]")
    assert [boxes.nth(i).is_checked() for i in range(boxes.count())] == [True, True]
    polls.clear()
    page.wait_for_timeout(2500)  # POLL_SECONDS is 1 in the live server; events flow meanwhile
    assert polls == []
    with page.expect_request(lambda r: "since=" in r.url):  # polling again
        page.get_by_label("Select every case on this page").uncheck()

    # The case page: a change in one panel reloads the others, not itself.
    page.locator("tr[data-case-id] a").first.click()
    page.wait_for_url("**/cases/*")
    case_path = page.url.removeprefix(base)
    with (
        page.expect_request(f"**{case_path}/actions") as actions,
        page.expect_request(f"**{case_path}/handoffs/panel") as handoffs,
    ):
        fork = page.locator("form.branch-fork")
        fork.get_by_label("Why fork here?").fill("Two ideas")
        for number in (1, 2):
            fork.get_by_label(f"Hypothesis {number}", exact=True).fill(f"Idea {number}")
        fork.get_by_role("button", name="Fork").click()
    assert actions.value and handoffs.value
    page.locator(".branch-node", has_text="Idea 2").wait_for()

    # Resolve… focuses the resolve form on this page.
    page.get_by_role("link", name="Resolve…").click()
    assert page.evaluate("document.activeElement.id") == "resolution-summary"

    # The handoff modal: Escape closes it and gives focus back; so does Cancel.
    page.get_by_role("button", name="Park or escalate…").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    dialog.locator("#handoff-notes").focus()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert page.evaluate("document.activeElement.id") == "handoff-open"
    page.get_by_role("button", name="Park or escalate…").click()
    dialog.wait_for()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="detached")

    # The other main pages load with nothing blocked.
    for path in (
        "/queue",
        "/endpoints",
        f"/endpoints/{github.endpoint_id}",
        f"/endpoints/{github.endpoint_id}/deliveries",
        "/account",
        "/account/tokens",
        "/admin/users",
        "/no-such-page",
    ):
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    assert page.csp_violations == []
