"""The console in the system Chromium, through Playwright: sign-in, live table, filters, case
page, API tokens and user management (CSRF on, as in production)."""

from __future__ import annotations

import os
import shutil
import threading

import httpx
import pytest
from werkzeug.serving import make_server

from app.accounts.models import User
from app.extensions import db
from tests.conftest import BOTH_DATABASES, GITHUB_FIXTURES, TEST_PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        message = "no system Chromium (apt-get install chromium)"
        if os.environ.get("CASEHOOK_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


#: Runs in every page before its own scripts (outside the page's CSP): reports what the CSP
#: blocked, and htmx refusing to evaluate JavaScript, on the console for the listener below.
REPORT_BLOCKED = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} ${e.sample || ""}`));
document.addEventListener("htmx:evalDisallowedError", (e) => console.error(
  `CSP violation: htmx would have evaluated JavaScript on ${e.target.outerHTML.slice(0, 120)}`));
"""


@pytest.fixture
def browser_page():
    """A Chromium page. ``page.csp_violations`` lists what the Content-Security-Policy
    blocked (and uncaught script errors); every browser test checks on the way out that it
    is empty."""
    from playwright.sync_api import sync_playwright

    executable = _chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.add_init_script(REPORT_BLOCKED)
        page.csp_violations = csp_violations = []

        def on_console(message) -> None:
            text = message.text
            if message.type == "error" and ("Content Security Policy" in text or "CSP" in text):
                csp_violations.append(f"{page.url}: {text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: csp_violations.append(f"{page.url}: {error}"))
        yield page
        browser.close()
    assert csp_violations == [], "the console broke its Content-Security-Policy"


@pytest.fixture
def live_server(app):
    """The test app served over HTTP on a free loopback port, in a thread."""
    app.config["POLL_SECONDS"] = 1
    app.config["WTF_CSRF_ENABLED"] = True  # every form and htmx request must carry it
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _sign_in(page, base_url: str, email: str, wanted: str = "/cases") -> None:
    """Open ``wanted``, get sent to the login page, sign in, land back on ``wanted``."""
    page.goto(base_url + wanted)
    page.wait_for_url(lambda url: "/login?next=" in url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{wanted}")
    assert email in page.locator(".topbar").inner_text()


def _post_fixture(base_url: str, github, name: str) -> None:
    body = (GITHUB_FIXTURES / f"{name}.json").read_bytes()
    response = httpx.post(
        base_url + github.path, content=body, headers=github.headers(name.split(".")[0], body)
    )
    assert response.status_code == 202, response.text


@BOTH_DATABASES
def test_case_appears_live_then_filter_open_and_read_timeline(
    app, live_server, browser_page, github, drain, make_user
):
    page = browser_page
    viewer_id = make_user("viewer", "viewer@example.com")
    _sign_in(page, live_server, "viewer@example.com")
    assert page.get_by_text("No cases yet").is_visible()

    _post_fixture(live_server, github, "issues.opened")
    _post_fixture(live_server, github, "pull_request.opened")
    _post_fixture(live_server, github, "pull_request.closed")
    assert drain() == 0

    # No reload: the table's poll brings the rows in.
    row = page.locator("tr[data-case-id]", has_text="Spelling error in the README file")
    row.wait_for()
    # A poll can land between the worker's two cases: wait for the second row too.
    page.locator("tr[data-case-id]").nth(1).wait_for()
    assert page.locator("tr[data-case-id]").count() == 2

    page.select_option("select[name=status]", "closed")
    page.wait_for_url("**/cases?status=closed")
    page.locator("tr[data-case-id]", has_text="Spelling error").wait_for(state="detached")
    assert page.locator("tr[data-case-id]").count() == 1
    assert "Update the README" in page.locator("tr[data-case-id]").inner_text()

    page.select_option("select[name=status]", "open")
    page.wait_for_url("**/cases?status=open")
    page.fill("input[name=q]", "spelling")
    page.wait_for_url("**/cases?status=open&q=spelling")
    row.wait_for()

    row.locator("td.title a").click()  # the row also links to the source
    page.wait_for_url("**/cases/*")
    assert (
        page.locator("h1")
        .inner_text()
        .endswith("Spelling error in the README file (Codertocat/Hello-World#1)")
    )
    assert page.locator("#case-status").inner_text() == "open"
    timeline = page.locator(".timeline")
    assert "GitHub opened the case" in timeline.inner_text()
    assert "issues.opened" in timeline.inner_text()  # the delivery's event type
    assert timeline.locator("li").first.get_attribute("data-type") == "case.opened"

    # The delivery behind the event, raw body and all, without leaving the page.
    timeline.locator("a").first.click()
    page.locator("#delivery-view .raw").nth(1).wait_for()
    assert '"action": "opened"' in page.locator("#delivery-view").inner_text()

    # Back restores the filtered table from history.
    page.go_back()
    page.wait_for_url("**/cases?status=open&q=spelling")
    row.wait_for()

    # Signed out meanwhile (deactivated): the next poll takes the whole page to the login.
    with app.app_context():
        db.session.get(User, viewer_id).active = False
        db.session.commit()
    page.wait_for_url(lambda url: "/login?next=/cases?status%3Dopen%26q%3Dspelling" in url)


def test_sign_in_create_and_revoke_a_token_manage_users_sign_out(
    live_server, browser_page, make_user
):
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm
    make_user("admin", "admin@example.com")
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == (
        "That email and password do not match an active account."
    )
    _sign_in(page, live_server, "admin@example.com", "/account/tokens")

    # htmx posts carry the CSRF token through hx-headers.
    page.get_by_label("Name").fill("grafana")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("chk_")
    response = httpx.get(f"{live_server}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["email"] == "admin@example.com"
    page.get_by_role("button", name="Revoke").click()
    page.locator("tr.revoked", has_text="grafana").wait_for()
    assert page.locator("#new-token").count() == 0
    response = httpx.get(f"{live_server}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401

    page.get_by_role("link", name="Users").click()
    page.wait_for_url("**/admin/users")
    page.get_by_label("Email").fill("new@example.com")
    page.get_by_role("button", name="Add user").click()
    assert "Created viewer new@example.com" in page.locator(".notice").inner_text()
    assert len(page.locator("#new-password").inner_text()) == 16
    page.get_by_label("Role of new@example.com").select_option("engineer")
    page.locator("tr", has_text="new@example.com").get_by_role("button", name="Deactivate").click()
    row = page.locator("tr.revoked", has_text="new@example.com")
    row.wait_for()
    assert row.get_by_role("combobox").input_value() == "engineer"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.get_by_text("You are signed out.").is_visible()
    page.goto(f"{live_server}/admin/users")
    page.wait_for_url(lambda url: "/login?next=" in url)
