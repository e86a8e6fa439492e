"""The endpoints console in the system Chromium: create an endpoint and a dynamic command
(inline validation on the way), dry-run it on a fixture, send the fixture through the real
route, and see the case the command opened (CSRF on, as in production)."""

from __future__ import annotations

import pytest

from tests.test_browser import _sign_in, browser_page, live_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

TITLE = "Bug: Spelling error in the README file (#1)"


def test_endpoint_command_dry_run_test_delivery_case(
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
    make_user,
    drain,
):
    page = browser_page
    make_user("admin", "admin@example.com")
    _sign_in(page, live_server, "admin@example.com", "/endpoints")
    assert page.get_by_text("No endpoints yet").is_visible()

    # Create the endpoint: URL and secret shown once.
    page.locator("#new-endpoint-provider").select_option("github")
    page.get_by_label("Name").fill("acme/web")
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#new-secret").inner_text()
    assert len(secret) >= 32
    assert "/webhooks/github/" in page.locator("#new-endpoint-url").inner_text()
    page.get_by_role("link", name="Open the endpoint").click()
    page.wait_for_url("**/endpoints/*")
    assert secret not in page.content()
    assert page.locator("#endpoint-secret").inner_text().startswith("••••")
    assert page.locator('tr[data-command="github.open"]').get_by_text("built-in").is_visible()

    # A dynamic command: a broken template is refused inline with its line, then fixed.
    page.get_by_role("link", name="New command").click()
    form = page.locator("#command-form")
    form.wait_for()
    form.get_by_label("Name").fill("spelling-bugs")
    form.get_by_label("Trigger (event types, * wildcards)").fill("issues.opened")
    form.get_by_label("Priority (lower runs first)").fill("5")
    form.get_by_label("Condition 1 path").fill("issue.title")
    form.get_by_label("Condition 1 operator").select_option("contains")
    form.get_by_label("Condition 1 value").fill("Spelling")
    title = form.get_by_label("Case title template (Jinja; empty: the provider's title)")
    title.fill("Bug: {{ issue.title }\n(#{{ issue.number }})")
    form.get_by_role("button", name="Save command").click()
    error = page.locator("#command-form .field-error")
    error.wait_for()
    assert error.inner_text().startswith("line 1: ")
    # What was typed is still there.
    assert page.get_by_label("Condition 1 value").input_value() == "Spelling"
    page.locator("#command-form").get_by_label(
        "Case title template (Jinja; empty: the provider's title)"
    ).fill("Bug: {{ issue.title }} (#{{ issue.number }})")
    page.locator("#command-form").get_by_role("button", name="Save command").click()
    row = page.locator('#commands tr[data-command="spelling-bugs"]')
    row.wait_for()
    assert "dynamic" in row.inner_text()
    assert page.locator("#command-form").count() == 0
    assert page.get_by_text("Saved command spelling-bugs.").is_visible()

    # Dry run on the fixture: the command runs, the built-in is stopped; nothing changes.
    page.locator("#dry-run-subject").select_option("fixture:issues.opened")
    page.get_by_role("button", name="Dry run").click()
    dry_row = page.locator('#dry-run-result tr[data-command="spelling-bugs"]')
    dry_row.wait_for()
    assert "runs" in dry_row.get_attribute("class")
    assert TITLE in dry_row.inner_text()
    assert (
        "an earlier command stops after matching"
        in page.locator('#dry-run-result tr[data-command="github.open"]').inner_text()
    )

    # Send the fixture through the real route, signed with the endpoint's secret.
    page.locator("#test-delivery-fixture").select_option("issues.opened")
    page.get_by_role("button", name="Send test delivery").click()
    page.get_by_text("the route answered 202").wait_for()
    assert drain() == 0

    # The case the command opened, with its rendered title.
    page.goto(f"{live_server}/cases")
    case_row = page.locator("tr[data-case-id]", has_text=TITLE)
    case_row.wait_for()
    assert page.locator("tr[data-case-id]").count() == 1

    # And the delivery in the endpoint's log, with its case.
    page.goto(f"{live_server}/endpoints")
    page.get_by_role("link", name="acme/web").click()
    page.get_by_role("link", name="Deliveries log (1)").click()
    log_row = page.locator("tr[data-delivery]")
    log_row.wait_for()
    assert "issues.opened" in log_row.inner_text() and "#1" in log_row.inner_text()
    assert "spelling-bugs: opened a case" in log_row.inner_text()


def test_replay_asks_first_and_says_what_it_will_do(
    app,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
    make_user,
    github,
    drain,
):
    """The deliveries log's Replay… opens a confirmation naming the provider's delivery id
    and what happens; No changes nothing, Yes adds the copy on top ("replay of <id>")."""
    from app.extensions import db
    from app.webhooks.models import Delivery

    page = browser_page
    make_user("engineer", "eng@example.com")
    github.send_fixture("issues.opened", delivery_id="gh-delivery-42")
    assert drain() == 0
    _sign_in(page, live_server, "eng@example.com", f"/endpoints/{github.endpoint_id}/deliveries")
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.get_by_role("button", name="Replay gh-delivery-42").click()
    page.wait_for_timeout(500)
    assert len(asked) == 1, asked
    assert asked[0].startswith("Replay delivery gh-delivery-42: it will be processed again")
    assert page.locator("tr[data-delivery]").count() == 1
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 1

    page.once("dialog", lambda dialog: answer(dialog, True))
    page.get_by_role("button", name="Replay gh-delivery-42", exact=True).click()
    copy = page.locator("tr.fresh[data-delivery]")
    copy.wait_for()
    assert "gh-delivery-42#replay-1" in copy.inner_text()
    assert "replay of gh-delivery-42" in copy.inner_text()
    assert len(asked) == 2
