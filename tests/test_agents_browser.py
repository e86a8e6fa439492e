"""Run an agent from the case page in the system Chromium and watch its output stream in."""

from __future__ import annotations

import threading

import pytest

from app import clock
from app.agents import service
from app.extensions import db
from app.tasks import run_due
from tests.agents_support import write_agent
from tests.conftest import add_case
from tests.test_browser import (  # noqa: F401 (browser_page and live_server are fixtures)
    _sign_in,
    browser_page,
    live_server,
)

pytestmark = pytest.mark.browser

# Prints the prompt, then a second line only once the file argv[1] exists (so the test sees
# the first line while the run is still going).
STREAMER = """
import os, sys, time
print("got:", sys.stdin.read(), flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
print("second line", flush=True)
"""


def test_run_an_agent_from_the_case_page_and_watch_its_output(
    app,
    make_user,
    tmp_path,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
):
    page, go_on = browser_page, tmp_path / "go-on"
    app.config["AGENT_STREAM_SECONDS"] = 0.2
    make_user("engineer", "eng@example.com")
    with app.app_context():
        argv = [*write_agent(tmp_path, "streamer", STREAMER), str(go_on)]
        service.create_agent({"name": "streamer", "argv": argv, "description": "streams"})
        case = add_case("Queue backlog on worker-3", "open", clock.now())
        db.session.commit()
        case_id = case.id
    _sign_in(page, live_server, "eng@example.com", f"/cases/{case_id}")

    panel = page.locator("#agents-panel")
    panel.get_by_role("button", name="Run agent…").click()
    panel.get_by_label("Prompt").fill("Why is the queue backed up?")
    panel.get_by_role("button", name="Run", exact=True).click()
    run = panel.locator("article.agent-run")
    run.wait_for()
    assert run.get_attribute("data-status") == "queued"

    def work():
        with app.app_context():
            run_due()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    # The first line shows while the agent still runs: the panel refreshes itself.
    page.locator(
        "article.agent-run[data-status=running]", has_text="got: Why is the queue"
    ).wait_for()
    assert "second line" not in run.inner_text()
    go_on.write_text("1")
    page.locator("article.agent-run[data-status=succeeded]", has_text="second line").wait_for()
    worker.join(10)
    assert "exit code 0" in run.inner_text()
