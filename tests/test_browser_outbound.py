"""Subscriptions in the system Chromium: refuse an unsafe URL, create a subscription (the
secret shown once), see a case change arrive in its attempts log, send a test event."""

from __future__ import annotations

import pytest

from tests.outbound_support import Receiver
from tests.test_browser import _post_fixture, _sign_in, browser_page, live_server  # noqa: F401

pytestmark = pytest.mark.browser


def test_create_a_subscription_and_watch_a_case_change_arrive(
    app,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
    make_user,
    github,
    drain,
):
    app.config.update(OUTBOUND_ALLOW="127.0.0.1", OUTBOUND_RETRY_SCHEDULE="0")
    receiver = Receiver().start()
    page = browser_page
    make_user("admin", "ops-admin@example.com")
    try:
        _sign_in(page, live_server, "ops-admin@example.com", "/subscriptions")
        assert page.get_by_text("No subscriptions yet").is_visible()

        # A private address is refused, naming its class.
        page.locator("#new-subscription-url").fill("http://10.0.0.1/hooks")
        page.locator("#create-subscription").click()
        assert "private address refused" in page.locator("#subscription-error").inner_text()

        page.locator("#new-subscription-url").fill(receiver.url())
        page.locator("#new-subscription-events").fill("case.*")
        page.locator("#create-subscription").click()
        secret = page.locator("#new-secret").inner_text()
        assert secret.startswith("whsec_")
        receiver.secrets.append(secret)

        # A case change: the issue opens a case, its case.opened goes to the receiver.
        _post_fixture(live_server, github, "issues.opened")
        assert drain() == 0
        row = page.locator("#attempts tr.attempt-succeeded").first
        row.wait_for(timeout=10_000)  # the log refreshes itself
        assert "case.opened" in row.inner_text() and "200" in row.inner_text()
        [message] = receiver.received
        assert message.verified and message.json["type"] == "case.opened"

        # The secret is not shown again; a test event arrives too.
        page.get_by_role("button", name="Send test event").click()
        assert page.get_by_text("Test event queued").is_visible()
        assert secret not in page.content()
        assert drain() == 0
        page.locator("#attempts tr", has_text="test.ping").wait_for(timeout=10_000)
        assert receiver.received[-1].json["type"] == "test.ping"

        page.get_by_role("link", name="Subscriptions", exact=True).first.click()
        assert "healthy" in page.locator("table.subscriptions").inner_text()
    finally:
        receiver.stop()
