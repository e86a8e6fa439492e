"""Resolution outputs end to end: resolving enqueues a job that a real RQ worker runs; the
three outputs are upserted, edited, approved/rejected and regenerated, each with its event;
a realistic case (GitHub fixture, three hypotheses, two dead ends, an escalation and a claim)
yields documents that say what happened. On SQLite and Postgres."""

from __future__ import annotations

import re

import pytest

from app.accounts.models import User
from app.cases import lifecycle
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.outputs import service
from app.outputs.jobs import WRITE, write_subject, writing_state
from app.outputs.models import ResolutionOutput
from app.outputs.service import OutputConflict, OutputInputError
from app.tasks import Task, latest_task, run_due
from app.tasks.queue import get_queue
from app.writing import KINDS
from app.writing.builtin import JARGON
from app.writing.context import case_context
from tests.conftest import BOTH_DATABASES
from tests.test_browser import _sign_in, browser_page, live_server  # noqa: F401 (fixtures)
from tests.test_writers import ChatServer, assert_no_placeholders, section

SUMMARY = "Fixed the double t in README.md (commmit → commit) and pushed it to the default branch"


@pytest.fixture
def users(app, make_user):
    """Two engineers, ``alice`` and ``bob``: ids."""
    return {
        "alice": make_user("engineer", "alice@example.com"),
        "bob": make_user("engineer", "bob@example.com"),
    }


def user(email: str) -> User:
    return db.session.scalar(db.select(User).where(User.email == email))


def events(case_id: int, prefix: str = "output.") -> list[CaseEvent]:
    return db.session.scalars(
        db.select(CaseEvent)
        .where(CaseEvent.case_id == case_id, CaseEvent.type.startswith(prefix))
        .order_by(CaseEvent.created_at, CaseEvent.id)
    ).all()


def outputs(case_id: int) -> dict[str, ResolutionOutput]:
    db.session.expire_all()
    rows = db.session.scalars(
        db.select(ResolutionOutput).where(ResolutionOutput.case_id == case_id)
    ).all()
    return {row.kind: row for row in rows}


@pytest.fixture
def github_case(app, github, drain):
    """Case 1 from the GitHub fixtures: an issue opened, then commented on."""
    assert github.send_fixture("issues.opened").status_code == 202
    assert github.send_fixture("issue_comment.created").status_code == 202
    assert drain() == 0
    return 1


def resolved(app, drain, case_id: int, actor_email: str = "alice@example.com") -> None:
    with app.app_context():
        resolution = service.resolve_case(db.session.get(Case, case_id), SUMMARY, user(actor_email))
        assert resolution.queued
    assert drain() == 0


# --- Resolving and writing ----------------------------------------------------------------------


@BOTH_DATABASES
def test_resolving_commits_then_a_worker_writes_three_drafts(app, users, github_case, drain):
    with app.app_context():
        case = db.session.get(Case, github_case)
        resolution = service.resolve_case(case, f"  {SUMMARY}\r\n", user("alice@example.com"))
        assert resolution.queued
        assert resolution.event.type == "case.resolved"
        assert resolution.event.payload == {"from": "open", "to": "resolved", "summary": SUMMARY}
        assert resolution.event.actor == "alice@example.com"
        # Committed with the task that writes the outputs: another session sees both.
        db.session.remove()
        case = db.session.get(Case, github_case)
        assert (case.status, case.resolution_summary) == ("resolved", SUMMARY)
        assert case.resolved_at is not None
        task = latest_task(WRITE, write_subject(case.id))
        assert task.status == "queued"
        assert task.payload == {"case_id": case.id, "actor": "alice@example.com"}
        state = writing_state(case.id)
        assert (state["state"], state["detail"], state["task"]["id"]) == ("pending", None, task.id)
        assert outputs(case.id) == {}

    assert drain() == 0

    with app.app_context():
        written = outputs(github_case)
        assert sorted(written) == sorted(KINDS)
        for output in written.values():
            assert output.status == "draft" and not output.edited
            assert (output.writer, output.model) == ("builtin", None)
            assert output.content == output.generated_content and output.content.strip()
            assert_no_placeholders(output.content)
        assert written["kb_article"].data["root_cause"] == SUMMARY
        assert written["ticket_notes"].data == {} and written["client_summary"].data == {}
        generated = events(github_case)
        assert [e.type for e in generated] == ["output.generated"] * 3
        assert {e.payload["kind"] for e in generated} == set(KINDS)
        assert all(
            e.actor == "alice@example.com" and e.payload["writer"] == "builtin" for e in generated
        )
        assert generated[0].payload["summary"] == "Ticket notes written by the built-in writer"
        state = writing_state(github_case)
        assert (state["state"], state["task"]["status"]) == ("idle", "succeeded")


@BOTH_DATABASES
def test_the_realistic_case_reads_like_the_work_that_was_done(
    app, users, github_case, drain, tmp_path
):
    """A GitHub issue, forked into three hypotheses with notes, two dead ends with reasons, an
    escalation claimed by a colleague, one solved: the documents say exactly that."""
    from app.branches import service as branches
    from app.handoffs import service as handoffs

    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    with app.app_context():
        case = db.session.get(Case, github_case)
        alice, bob = user("alice@example.com"), user("bob@example.com")
        root, _ = branches.ensure_root(case)
        branches.add_note(
            root, "Reproduced: the README's first paragraph says 'commmit'.", actor=alice
        )
        fork_reason = "the typo could come from three places"
        cache, template, source = branches.fork(
            case,
            fork_reason,
            [
                {
                    "label": "Stale docs build",
                    "description": "the site serves an old build of the README",
                },
                {
                    "label": "Generated from a template",
                    "description": "a template writes the README",
                },
                {"label": "Typo in README.md itself", "description": "the file in the repository"},
            ],
            actor=alice,
        )
        db.session.commit()

        branches.switch(case, cache, actor=alice)
        branches.add_note(
            cache,
            "Purged the docs CDN and rebuilt the site.",
            [
                branches.Upload(
                    "build.log", b"build ok\nERROR purge failed for /docs/readme\n", "text/plain"
                )
            ],
            actor=alice,
        )
        branches.set_status(cache, "dead_end", "a fresh build still shows the typo", actor=alice)
        branches.switch(case, template, actor=alice)
        branches.add_note(template, "Searched the repository for README templates.", actor=alice)
        branches.set_status(template, "dead_end", "no template generates the README", actor=alice)
        db.session.commit()

        escalation = handoffs.create_handoff(
            case,
            "escalate",
            "needs write access to the repository",
            priority="elevated",
            actor=alice,
        )
        db.session.commit()
        handoffs.claim(escalation, bob)
        db.session.commit()

        branches.switch(case, source, actor=bob)
        branches.add_note(source, "git blame shows 'commmit' added in the first commit.", actor=bob)
        branches.set_status(source, "solved", "README.md line 1 had 'commmit'", actor=bob)
        db.session.commit()

        context = case_context(case)
        assert [d["event_type"] for d in context["deliveries"]] == [
            "issues.opened",
            "issue_comment.created",
        ]
        assert context["deliveries"][1]["summary"].startswith("Codertocat commented")
        assert [b["label"] for b in context["branches"]][1:] == [
            "Stale docs build",
            "Generated from a template",
            "Typo in README.md itself",
        ]
        assert context["handoffs"][0]["claimed_by"] == "bob@example.com"

        assert service.resolve_case(case, SUMMARY, bob).queued
    assert drain() == 0

    with app.app_context():
        written = outputs(github_case)
        notes = written["ticket_notes"].content
        steps = section(notes, "Diagnostic steps")
        assert "Reproduced: the README's first paragraph says 'commmit'." in steps
        assert "because the typo could come from three places" in steps
        assert "Outcome: Dead end: a fresh build still shows the typo." in steps
        assert "Outcome: Dead end: no template generates the README." in steps
        assert "Outcome: Solved: README.md line 1 had 'commmit'." in steps
        assert "Attached `build.log`, which shows “ERROR purge failed for /docs/readme”" in steps
        assert re.search(
            r"Escalated with elevated priority by alice@example\.com on .*: needs write "
            r"access to the repository\. Claimed by bob@example\.com",
            steps,
        )
        assert SUMMARY in section(notes, "Resolution")
        assert (
            "Problem" in notes
            and "Spelling error in the README file (Codertocat/Hello-World#1)" in notes
        )
        # The source's own description, quoted (the issue body of the opening delivery).
        assert (
            "GitHub described it:\n\n> It looks like you accidently spelled 'commit' with two 't's."
            in section(notes, "Problem")
        )
        advice = section(notes, "Recommendations")
        assert "“Stale docs build” (a fresh build still shows the typo)" in advice
        assert "“Generated from a template” (no template generates the README)" in advice
        assert "bob@example.com picked it up" in advice

        kb = written["kb_article"]
        assert kb.data["rule_out_first"] == [
            {"branch": "Stale docs build", "reason": "a fresh build still shows the typo"},
            {"branch": "Generated from a template", "reason": "no template generates the README"},
        ]
        assert kb.data["root_cause"] == "Typo in README.md itself: README.md line 1 had 'commmit'"
        rule_out = section(kb.content, "Rule out first")
        assert "**Stale docs build**: a fresh build still shows the typo." in rule_out
        assert "**Generated from a template**: no template generates the README." in rule_out
        assert kb.data["tags"] == ["github", "issues.opened", "issue_comment.created"]

        client = written["client_summary"].content
        paragraphs = [p for p in client.strip().split("\n\n") if p.strip()]
        assert 2 <= len(paragraphs) <= 3
        # The engineer's summary says "default branch" (git's word): the writer cannot reword
        # what people wrote, so the check reads the writer's own sentences.
        own = client.replace(SUMMARY, "")
        for word in JARGON:
            assert word not in own.lower(), word
        assert "issues.opened" not in client and "issue_comment" not in client
        assert "looked into three possible causes and ruled out two of them" in client
        assert "brought in a colleague" in client
        # No internal names: the hypotheses are counted, not named; nobody's email.
        for name in ("Stale docs build", "Generated from a template", "Typo in README.md", "@"):
            assert name not in client, name
        for output in written.values():
            assert_no_placeholders(output.content)


# --- Regenerating, editing, deciding ------------------------------------------------------------


@BOTH_DATABASES
def test_regenerating_is_an_upsert_and_keeps_edits_only_when_asked(app, users, github_case, drain):
    resolved(app, drain, github_case)
    with app.app_context():
        notes = outputs(github_case)["ticket_notes"]
        original = notes.content
        assert service.edit_output(notes, "# My own notes\n\nWe fixed it.", user("bob@example.com"))
        db.session.commit()
        assert (notes.edited, notes.status) == (True, "draft")
        assert service.request_regenerate(notes, keep_edits=True, actor=user("bob@example.com"))
    assert drain() == 0
    with app.app_context():
        rows = db.session.scalars(
            db.select(ResolutionOutput).where(ResolutionOutput.case_id == github_case)
        ).all()
        assert len(rows) == 3
        notes = outputs(github_case)["ticket_notes"]
        assert notes.content == "# My own notes\n\nWe fixed it." and notes.edited
        assert notes.generated_content == original
        last = events(github_case)[-1]
        assert (last.type, last.payload["regenerated"], last.payload["kept_edits"]) == (
            "output.generated",
            True,
            True,
        )
        assert (
            last.payload["summary"]
            == "Ticket notes rewritten by the built-in writer (your edits kept)"
        )

        service.request_regenerate(notes, keep_edits=False, actor="bob@example.com")
    assert drain() == 0
    with app.app_context():
        notes = outputs(github_case)["ticket_notes"]
        assert notes.content == original and not notes.edited
        assert events(github_case)[-1].payload["kept_edits"] is False
        assert db.session.scalar(db.select(db.func.count()).select_from(ResolutionOutput)) == 3


def test_keep_edits_on_an_unedited_output_just_rewrites_it(app, users, github_case, drain):
    resolved(app, drain, github_case)
    with app.app_context():
        summary = outputs(github_case)["client_summary"]
        service.regenerate(summary, keep_edits=True, actor="alice@example.com")
        assert not summary.edited and summary.content == summary.generated_content
        assert events(github_case)[-1].payload["kept_edits"] is False


@BOTH_DATABASES
def test_approve_and_reject_write_events_and_editing_makes_a_new_draft(
    app, users, github_case, drain
):
    resolved(app, drain, github_case)
    with app.app_context():
        bob = user("bob@example.com")
        written = outputs(github_case)
        service.set_status(written["kb_article"], "approved", bob)
        service.set_status(written["client_summary"], "rejected", bob)
        db.session.commit()
        written = outputs(github_case)
        kb = written["kb_article"]
        assert (kb.status, kb.approved_by.email) == ("approved", "bob@example.com")
        assert kb.approved_at is not None
        assert written["client_summary"].status == "rejected"
        decided = events(github_case)[-2:]
        assert [(e.type, e.actor, e.payload["kind"]) for e in decided] == [
            ("output.approved", "bob@example.com", "kb_article"),
            ("output.rejected", "bob@example.com", "client_summary"),
        ]
        # Only a draft can be decided.
        with pytest.raises(OutputConflict, match="already approved; edit or regenerate"):
            service.set_status(kb, "rejected", bob)
        with pytest.raises(OutputInputError, match="approved or rejected"):
            service.set_status(written["ticket_notes"], "pushed", bob)
        # Editing an approved output makes it a draft again, approval cleared.
        assert service.edit_output(kb, kb.content + "\nOne more line.", bob)
        db.session.commit()
        kb = outputs(github_case)["kb_article"]
        assert (kb.status, kb.edited, kb.approved_by_id, kb.approved_at) == (
            "draft",
            True,
            None,
            None,
        )
        edited = events(github_case)[-1]
        assert (edited.type, edited.payload["from"]) == ("output.edited", "approved")
        # The same text again is no edit at all; empty text is refused.
        assert not service.edit_output(kb, kb.content + "\r\n", bob)
        with pytest.raises(OutputInputError, match="cannot be empty"):
            service.edit_output(kb, "  \n", bob)


# --- Refusals and failures ----------------------------------------------------------------------


def test_resolving_is_refused_without_a_summary_or_from_the_wrong_status(app, users, github_case):
    with app.app_context():
        case = db.session.get(Case, github_case)
        with pytest.raises(OutputInputError, match="summary is required"):
            service.resolve_case(case, "   ", user("alice@example.com"))
        with pytest.raises(OutputInputError, match="over 10000 characters"):
            service.resolve_case(case, "x" * 10_001, user("alice@example.com"))
        lifecycle.transition(case, "closed", reason="manual")
        db.session.commit()
        with pytest.raises(
            TransitionError, match="a closed case cannot become resolved; allowed: open"
        ):
            service.resolve_case(case, SUMMARY, user("alice@example.com"))
        db.session.rollback()
        assert db.session.get(Case, github_case).status == "closed"
        assert get_queue().count == 0
        with pytest.raises(OutputConflict, match="resolve it first"):
            service.request_write(lifecycle_reopened(case))


def lifecycle_reopened(case: Case) -> Case:
    lifecycle.transition(case, "open")
    db.session.commit()
    return case


def test_resolving_with_redis_down_still_resolves_and_the_outputs_are_written_later(
    app, users, github_case, redis_url
):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    with app.app_context():
        resolution = service.resolve_case(
            db.session.get(Case, github_case), SUMMARY, user("alice@example.com")
        )
        # The task is a row committed with the resolution: only its wake-up was lost.
        assert resolution.queued
        assert db.session.get(Case, github_case).status == "resolved"
        assert writing_state(github_case)["state"] == "pending"
    app.config["REDIS_URL"] = redis_url
    with app.app_context():
        # Asking again while the task waits does not add a second one.
        assert service.request_write(db.session.get(Case, github_case), user("alice@example.com"))
        assert db.session.scalar(db.select(db.func.count(Task.id)).where(Task.kind == WRITE)) == 1
        assert run_due() == 1  # what the supervisor's sweep does for a task nobody woke
        assert len(outputs(github_case)) == 3


def test_resolving_again_after_a_reopen_rewrites_the_same_rows(app, users, github_case, drain):
    resolved(app, drain, github_case)
    with app.app_context():
        first = {kind: row.id for kind, row in outputs(github_case).items()}
        service.set_status(
            outputs(github_case)["ticket_notes"], "approved", user("bob@example.com")
        )
        case = db.session.get(Case, github_case)
        lifecycle.transition(case, "open")
        db.session.commit()
        assert service.resolve_case(
            case, "Reverted a bad merge that brought the typo back.", None
        ).queued
    assert drain() == 0
    with app.app_context():
        again = outputs(github_case)
        assert {kind: row.id for kind, row in again.items()} == first
        assert again["ticket_notes"].status == "draft"
        assert "Reverted a bad merge" in again["ticket_notes"].content
        assert "reopened once" in again["ticket_notes"].content


def test_a_failing_job_is_reported_with_its_error(
    app, users, github_case, drain, monkeypatch, engineer_client
):
    def broken(*args, **kwargs):
        raise RuntimeError("the writer broke")

    monkeypatch.setattr("app.outputs.service._write", broken)
    with app.app_context():
        case = db.session.get(Case, github_case)
        service.resolve_case(case, SUMMARY, user("alice@example.com"))
        task = latest_task(WRITE, write_subject(case.id))
        task.max_attempts = 1  # fail now rather than wait for the retry schedule
        db.session.commit()
    assert drain() == 0
    with app.app_context():
        state = writing_state(github_case)
        assert (state["state"], state["detail"]) == ("failed", "RuntimeError: the writer broke")
        assert state["task"]["last_error"] == "RuntimeError: the writer broke"
        assert outputs(github_case) == {}
    page = engineer_client.get(f"/cases/{github_case}").get_data(as_text=True)
    assert "Writing the outputs failed: RuntimeError: the writer broke" in page
    assert "Try again" in page and "hx-trigger" not in page.split('id="outputs-panel"')[1][:300]


# --- The LLM writer through the job -------------------------------------------------------------


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()


def test_the_job_uses_the_llm_and_records_the_model(app, users, github_case, drain, chat_server):
    app.config.update(LLM_BASE_URL=chat_server.url, LLM_MODEL="gpt-test", LLM_TIMEOUT_SECONDS=5)
    resolved(app, drain, github_case)
    with app.app_context():
        written = outputs(github_case)
        assert {(o.writer, o.model) for o in written.values()} == {("llm", "local-model-7b")}
        assert written["ticket_notes"].content.startswith("## From the model")
        assert (
            written["kb_article"].data["root_cause"].startswith("The payments upstream certificate")
        )
        assert events(github_case)[0].payload["summary"] == (
            "Ticket notes written by the LLM (local-model-7b)"
        )


def test_the_job_falls_back_to_builtin_when_the_llm_fails(
    app, users, github_case, drain, chat_server
):
    chat_server.mode = "error"
    app.config.update(LLM_BASE_URL=chat_server.url, LLM_MODEL="gpt-test")
    resolved(app, drain, github_case)
    with app.app_context():
        written = outputs(github_case)
        assert {(o.writer, o.model) for o in written.values()} == {("builtin", None)}
        assert "## Problem" in written["ticket_notes"].content
        generated = events(github_case)
        assert all("answered 500" in e.payload["fallback_reason"] for e in generated)


# --- The case page panel, in a browser ----------------------------------------------------------


@pytest.mark.browser
@BOTH_DATABASES
def test_resolve_watch_the_outputs_appear_edit_and_approve(
    app,
    users,
    github,
    drain,
    live_server,  # noqa: F811 (the fixture imported above)
    browser_page,  # noqa: F811
):
    """In Chromium: resolve from the case page, see "writing…", let a worker run, see the tabs,
    switch tab, edit the client summary, approve it."""
    page, base = browser_page, live_server
    assert github.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    _sign_in(page, base, "alice@example.com", "/cases/1")

    page.get_by_label("Resolve the case: what fixed it?").fill(SUMMARY)
    page.get_by_role("button", name="Resolve", exact=True).click()
    page.get_by_text("Writing the ticket notes").wait_for()  # the page reloaded
    assert page.locator("#case-status").inner_text() == "resolved"
    assert drain() == 0
    page.get_by_role("tab", name=re.compile("Ticket notes")).wait_for()  # the poll swapped it in
    assert "Diagnostic steps" in page.locator(".output-body").inner_text()

    page.get_by_role("tab", name=re.compile("Client summary")).click()
    page.locator("[role=tab][aria-selected=true]", has_text="Client summary").wait_for()
    page.get_by_role("link", name="Edit").click()
    editor = page.get_by_label("Markdown")
    editor.fill("We fixed the spelling mistake in the README. It is resolved.")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Client summary saved.").wait_for()
    assert "edited" in page.locator(".output-meta").inner_text()
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Client summary approved.").wait_for()
    assert "approved by alice@example.com" in page.locator(".output-meta").inner_text()
    with app.app_context():
        summary = outputs(1)["client_summary"]
        assert (summary.status, summary.edited) == ("approved", True)
        assert summary.content == "We fixed the spelling mistake in the README. It is resolved."
