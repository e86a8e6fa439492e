"""The console in the system Chromium, through Playwright: live table, filters, case page."""

from __future__ import annotations

import os
import shutil
import threading

import httpx
import pytest
from werkzeug.serving import make_server

from tests.conftest import BOTH_DATABASES, GITHUB_FIXTURES

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


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    executable = _chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


@pytest.fixture
def live_server(app):
    """The test app served over HTTP on a free loopback port, in a thread."""
    app.config["POLL_SECONDS"] = 1
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _post_fixture(base_url: str, github, name: str) -> None:
    body = (GITHUB_FIXTURES / f"{name}.json").read_bytes()
    response = httpx.post(
        base_url + github.path, content=body, headers=github.headers(name.split(".")[0], body)
    )
    assert response.status_code == 202, response.text


@BOTH_DATABASES
def test_case_appears_live_then_filter_open_and_read_timeline(
    live_server, browser_page, github, drain
):
    page = browser_page
    page.goto(f"{live_server}/cases")
    assert page.get_by_text("No cases yet").is_visible()

    _post_fixture(live_server, github, "issues.opened")
    _post_fixture(live_server, github, "pull_request.opened")
    _post_fixture(live_server, github, "pull_request.closed")
    assert drain() == 0

    # No reload: the table's poll brings the rows in.
    row = page.locator("tr[data-case-id]", has_text="Spelling error in the README file")
    row.wait_for()
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

    row.get_by_role("link").click()
    page.wait_for_url("**/cases/*")
    assert (
        page.locator("h1")
        .inner_text()
        .endswith("Spelling error in the README file (Codertocat/Hello-World#1)")
    )
    assert page.locator("#case-status").inner_text() == "open"
    timeline = page.locator(".timeline")
    assert "case.opened" in timeline.inner_text()
    assert "issues.opened" in timeline.inner_text()

    # The delivery behind the event, raw body and all, without leaving the page.
    timeline.locator("a").first.click()
    page.locator("#delivery-view .raw").nth(1).wait_for()
    assert '"action": "opened"' in page.locator("#delivery-view").inner_text()

    # Back restores the filtered table from history.
    page.go_back()
    page.wait_for_url("**/cases?status=open&q=spelling")
    row.wait_for()
