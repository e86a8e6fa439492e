"""In the system Chromium: an admin gives a GitHub endpoint its reply settings on the
endpoint page, opens a case and replies to the source; the worker posts the comment to a
local server speaking GitHub's API, and the timeline shows the reply with its link (CSRF on,
strict CSP)."""

from __future__ import annotations

import pytest

from app.cases.models import Case
from app.extensions import db
from tests.replies_support import FakeAPI
from tests.test_browser import _post_fixture, _sign_in, browser_page, live_server  # noqa: F401

pytestmark = pytest.mark.browser


def test_reply_to_the_source_from_the_case_page(app, live_server, browser_page, github, drain):  # noqa: F811
    api = FakeAPI()
    try:
        page = browser_page
        # ``github`` signed in admin@example.com (the ``client`` fixture) for its endpoint.
        _post_fixture(live_server, github, "issues.opened")
        assert drain() == 0
        with app.app_context():
            case_id = db.session.scalars(db.select(Case.id)).one()

        # The case cannot reply yet, and says what is missing.
        _sign_in(page, live_server, "admin@example.com", f"/cases/{case_id}")
        assert "has no reply token" in page.locator("#reply-panel").inner_text()

        # The endpoint page: reply settings (the token is never shown back).
        page.goto(f"{live_server}/endpoints/{github.endpoint_id}")
        page.locator("#endpoint-settings summary", has_text="Edit").click()
        page.locator("input[name=reply_api_url]").fill(api.url)
        page.locator("input[name=reply_token]").fill("ghp_browser_token")
        page.locator("#endpoint-settings").get_by_role("button", name="Save").click()
        page.locator("#endpoint-settings .flash", has_text="Saved").wait_for()
        assert "stored encrypted" in page.locator("#endpoint-reply").inner_text()
        assert "ghp_browser_token" not in page.content()

        # The case page: write, send; the panel shows it queued, the worker posts it.
        page.goto(f"{live_server}/cases/{case_id}")
        panel = page.locator("#reply-panel")
        panel.locator("textarea[name=text]").fill("Thanks, **looking into it**.")
        panel.get_by_role("button", name="Reply to source").click()
        panel.locator(".flash", has_text="Reply queued").wait_for()
        assert drain() == 0
        panel.locator(".reply-state", has_text="posted").wait_for()
        link = page.locator("#timeline .reply-outcome a", has_text="view the comment")
        link.wait_for()  # the settled poll announced case-changed: the timeline reloaded
        assert link.get_attribute("href").endswith("/issues/1/comments#answer")

        (seen,) = api.requests
        assert seen.path == "/repos/Codertocat/Hello-World/issues/1/comments"
        # The reply, then Casehook's hidden no-loop marker (mentions never answer it).
        assert seen.body == {"body": "Thanks, **looking into it**.\n\n<!-- casehook -->"}
        assert seen.header("Authorization") == "Bearer ghp_browser_token"
    finally:
        api.close()
