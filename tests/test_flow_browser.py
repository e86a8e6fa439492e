"""The whole flow of issue 4 in the system Chromium, as a person works a case: a real GitHub
fixture opens a case, then fork, note, dead ends, park through the modal, claim from the
queue, solve, resolve, watch the worker's outputs appear, edit and approve one. On SQLite and
Postgres; the app runs with CSRF on and a 1 s poll (``live_server``)."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.outputs.models import ResolutionOutput
from tests.conftest import BOTH_DATABASES
from tests.test_browser import (  # noqa: F401 (browser_page and live_server are fixtures)
    _post_fixture,
    _sign_in,
    browser_page,
    live_server,
)

pytestmark = pytest.mark.browser

ENGINEER = "eng@example.com"
TITLE = "Spelling error in the README file"
FORK_REASON = "Three places the misspelling could come from"
HYPOTHESES = [
    ("Renderer bug", "github.com shows a word that is not in the file"),
    ("Stale cache", "an old copy of the README is still served"),
    ("Typo in README.md", "the word is misspelled in the file itself"),
]
NOTE = "Opened the **raw** README: the misspelling is there too."
DEAD_END_REASONS = {
    "Renderer bug": "the raw file shows the same misspelling so the renderer is fine",
    "Stale cache": "a fresh clone has the same text so nothing is cached",
}
WAITING_ON = "the docs team to confirm the correct spelling"
SOLVED_REASON = "README.md had commmit with three m; corrected it"
SUMMARY = (
    "Fixed the misspelling in README.md (commmit to commit) and pushed it to the default branch"
)
ADDED_LINE = "Checked by the docs team after the fix."


@BOTH_DATABASES
def test_a_fixture_case_from_open_to_approved_outputs_in_the_console(
    app,
    make_user,
    github,
    drain,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
):
    page, base = browser_page, live_server
    make_user("engineer", ENGINEER)

    # 1. Sign in through /login.
    _sign_in(page, base, ENGINEER, "/cases")

    # 2. A GitHub delivery through the real route, a real worker: the table's poll brings it.
    _post_fixture(base, github, "issues.opened")
    assert drain() == 0
    row = page.locator("tr[data-case-id]", has_text=TITLE)
    row.wait_for()
    case_id = int(row.get_attribute("data-case-id"))
    row.get_by_role("link", name=TITLE).click()
    page.wait_for_url(f"**/cases/{case_id}")
    assert page.locator("#case-status").inner_text() == "open"
    page.evaluate("window.notReloaded = true")  # gone if the page reloads

    # 3. Fork the root into three hypotheses.
    nodes = page.locator(".branch-node")
    assert nodes.count() == 1
    fork = page.locator("form.branch-fork")
    fork.get_by_label("Why fork here?").fill(FORK_REASON)
    for number, (label, description) in enumerate(HYPOTHESES, start=1):
        fork.get_by_label(f"Hypothesis {number}", exact=True).fill(label)
        fork.get_by_label(f"What hypothesis {number} would explain").fill(description)
    fork.get_by_role("button", name="Fork").click()
    page.locator(".branch-node", has_text=HYPOTHESES[2][0]).wait_for()
    assert nodes.count() == 4
    for label, _ in HYPOTHESES:
        node = page.locator(".branch-node", has_text=label)
        assert node.locator(".branch-badge").inner_text() == "untried"

    def node(label: str):
        return page.locator(".branch-node", has_text=label)

    def switch_to(label: str) -> None:
        node(label).get_by_role("button", name=label).click()
        page.locator(".branch-node.is-active", has_text=label).wait_for()

    def conclude(verdict: str, reason: str) -> None:
        form = page.locator("form.branch-form", has_text="Conclude this branch")
        form.get_by_label(verdict, exact=True).check()
        form.get_by_label("Why?").fill(reason)
        form.get_by_role("button", name="Conclude").click()

    # 4. A note on a branch, after switching to it on the map.
    first, second, third = (label for label, _ in HYPOTHESES)
    switch_to(first)
    assert page.locator("#branch-focus-h").inner_text().startswith(first)
    note = page.locator("form.branch-form", has_text="Add a note")
    note.get_by_label("What did you try").fill(NOTE)
    note.get_by_role("button", name="Add note").click()
    page.locator(".branch-note strong", has_text="raw").wait_for()  # Markdown rendered
    assert "the misspelling is there too" in page.locator(".branch-note").inner_text()

    # 5. Two dead ends, with reasons: the badges change in place.
    conclude("Dead end", DEAD_END_REASONS[first])
    node(first).locator(".branch-badge", has_text="dead end").wait_for()
    switch_to(second)
    conclude("Dead end", DEAD_END_REASONS[second])
    node(second).locator(".branch-badge", has_text="dead end").wait_for()
    assert node(first).locator(".branch-badge").inner_text() == "dead end"
    assert node(third).locator(".branch-badge").inner_text() == "untried"
    assert page.evaluate("window.notReloaded") is True

    # 6. Park through the handoff modal.
    page.get_by_role("toolbar").get_by_role("button", name="Park…").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert dialog.get_by_label("Park").is_checked()
    assert dialog.get_by_text("What are you waiting on?").is_visible()
    dialog.locator("#handoff-notes").fill(f"Waiting on {WAITING_ON}")
    dialog.get_by_role("button", name="Hand off").click()
    dialog.wait_for(state="detached")
    page.locator("#case-status", has_text="parked").wait_for()
    page.locator("#handoff-panel", has_text="waiting in the").wait_for()
    assert page.evaluate("window.notReloaded") is True

    # 7. Claim it from the queue: a briefing, the case open again and assigned to me.
    page.get_by_role("link", name="Queue", exact=True).click()
    page.wait_for_url("**/queue")
    page.locator("#queue-tabs").get_by_role("link", name="Parked").click()  # apart from claims
    page.wait_for_url("**/queue?intent=park")
    queued = page.locator("tr[data-handoff-id]", has_text=TITLE)
    assert "parked" in queued.inner_text()
    queued.get_by_role("button", name=f"Claim case #{case_id}").click()
    briefing = page.locator(".handoffs-briefing")
    briefing.wait_for()
    briefing_text = briefing.inner_text()
    assert f"You claimed case #{case_id}" in briefing_text
    assert "It is open again and assigned to you" in briefing_text
    # The briefing is a task's: "being written…" until the worker has written it, then the
    # fragment's poll swaps it in.
    assert "being written…" in briefing_text
    assert drain() == 0
    briefing.get_by_text(WAITING_ON).first.wait_for()
    assert "being written…" not in briefing.inner_text()
    page.get_by_role("link", name=f"Open case #{case_id} →").click()
    page.wait_for_url(f"**/cases/{case_id}")
    assert page.locator("#case-status").inner_text() == "open"
    assert page.locator("#case-assignee").inner_text() == f"{ENGINEER} (you)"
    assert f"claimed by {ENGINEER}" in page.locator("#handoff-panel").inner_text()
    page.evaluate("window.notReloaded = true")

    # 8. Solve the third hypothesis, follow the offer, resolve.
    switch_to(third)
    conclude("Solved", SOLVED_REASON)
    node(third).locator(".branch-badge", has_text="solved").wait_for()
    offer = page.locator(".branch-resolve")
    offer.wait_for()
    assert SOLVED_REASON in offer.inner_text()
    assert page.evaluate("window.notReloaded") is True  # the map changed in place
    offer.get_by_role("link", name="Resolve the case").click()
    page.wait_for_url(f"**/cases/{case_id}#resolve")
    page.get_by_label("Resolve the case: what fixed it?").fill(SUMMARY)
    page.get_by_role("button", name="Resolve", exact=True).click()
    page.get_by_text("Writing the ticket notes").wait_for()  # HX-Refresh reloaded the page
    assert page.locator("#case-status").inner_text() == "resolved"

    # 9. The worker writes the three outputs; the panel's poll swaps the tabs in.
    assert drain() == 0
    page.get_by_role("tab", name=re.compile("Client summary")).wait_for()
    assert page.get_by_role("tab").all_inner_texts() == [
        "Ticket notes draft",
        "Knowledge-base article draft",
        "Client summary draft",
    ]
    page.get_by_role("tab", name=re.compile("Knowledge-base article")).click()
    page.locator("[role=tab][aria-selected=true]", has_text="Knowledge-base article").wait_for()
    article = page.locator("#output-body-kb_article")
    article.wait_for()
    rule_out = article.get_by_role("heading", name="Rule out first")
    assert rule_out.is_visible()
    rule_out_items = article.locator("h2:has-text('Rule out first') ~ ul").first.inner_text()
    for label, reason in DEAD_END_REASONS.items():
        assert label in rule_out_items and reason in rule_out_items, rule_out_items
    assert third not in rule_out_items

    # 10. Edit the article, save, approve.
    page.get_by_role("link", name="Edit").click()
    editor = page.get_by_label("Markdown")
    original = editor.input_value()
    assert "## Rule out first" in original
    edited = original.rstrip() + f"\n\n{ADDED_LINE}\n"
    editor.fill(edited)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Knowledge-base article saved.").wait_for()
    assert ADDED_LINE in page.locator("#output-body-kb_article").inner_text()
    assert "edited" in page.locator(".output-meta").inner_text()
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Knowledge-base article approved.").wait_for()
    assert f"approved by {ENGINEER}" in page.locator(".output-meta").inner_text()
    kb_tab = page.locator("#output-tab-kb_article")
    assert kb_tab.locator(".badge").inner_text() == "approved"
    assert page.locator("#output-tab-ticket_notes .badge").inner_text() == "draft"

    # The timeline tells the story (the approval arrives out of band).
    timeline = page.locator("#timeline")
    timeline.locator("[data-type='output.approved']").wait_for()
    shown = timeline.locator("li.event").evaluate_all("all => all.map(e => e.dataset.type)")
    for event in (
        "case.opened",
        "branch.forked",
        "note.added",
        "branch.status_changed",
        "case.parked",
        "case.claimed",
        "case.resolved",
        "output.generated",
        "output.edited",
        "output.approved",
    ):
        assert event in shown, (event, shown)
    # Newest first.
    order = [shown.index(e) for e in ("case.claimed", "case.parked", "branch.forked")]
    assert order == sorted(order)
    assert shown.index("output.approved") < shown.index("case.resolved")
    assert shown[-1] == "case.opened"
    parked = timeline.locator(".event-case-parked").inner_text()
    assert parked.startswith(f"{ENGINEER} parked the case: Waiting on {WAITING_ON}"), parked

    with app.app_context():
        kb = db.session.scalar(
            db.select(ResolutionOutput).where(
                ResolutionOutput.case_id == case_id, ResolutionOutput.kind == "kb_article"
            )
        )
        assert (kb.status, kb.edited) == ("approved", True)
        assert ADDED_LINE in kb.content
