"""The branch map (SPEC C4): every action and refusal of app/branches/service.py, notes and
attachments, sibling summaries, the writer's context, and the console partial."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.accounts.models import User
from app.branches import service, summaries
from app.branches.models import Attachment, Branch
from app.branches.service import (
    AttachmentTooLarge,
    BranchError,
    BranchInputError,
    Upload,
    ensure_root,
)
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.tasks import latest_task, run_due
from tests.conftest import BOTH_DATABASES
from tests.test_browser import _sign_in, browser_page, live_server  # noqa: F401 (fixtures)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.fixture
def attachments_dir(app, tmp_path) -> Path:
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    return tmp_path / "attachments"


@pytest.fixture
def ctx(app, make_user, attachments_dir):
    """An app context with an open case and an engineer to act as."""
    engineer_id = make_user("engineer", "eng@example.com")
    with app.app_context():
        case = Case(title="Deliveries to the billing hook time out", provider="github")
        db.session.add(case)
        db.session.commit()
        ensure_root(case)  # as the case.opened subscriber does
        db.session.commit()
        yield case, db.session.get(User, engineer_id)


def options(*labels: str) -> list[dict]:
    return [{"label": label, "description": f"maybe {label.lower()}"} for label in labels]


def events(case, type_: str) -> list[CaseEvent]:
    return db.session.scalars(
        db.select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.type == type_)
    ).all()


def forked(case, actor, *labels: str) -> list[Branch]:
    children = service.fork(case, "several explanations", options(*labels), actor=actor)
    db.session.commit()
    return children


# --- The root -------------------------------------------------------------------------------


@BOTH_DATABASES
def test_every_case_gets_its_root_once(ctx):
    case, _ = ctx  # made with its root, as the case.opened subscriber does
    root = service.root_of(case)
    assert root.is_root and root.status == "active" and root.label == "Root"
    assert case.active_branch_id == root.id
    again, created = service.ensure_root(case)
    assert not created and again.id == root.id
    assert service.active_branch(case).id == root.id
    # The database refuses a second root (two first looks at once).
    db.session.add(Branch(case_id=case.id, label="Another root", status="active"))
    with pytest.raises(Exception, match=r"(?i)unique"):
        db.session.flush()
    db.session.rollback()


def test_an_active_branch_id_pointing_nowhere_falls_back_to_the_root(ctx):
    case, _ = ctx
    case.active_branch_id = 9999
    root, _ = service.ensure_root(case)
    assert case.active_branch_id == root.id


# --- Fork -----------------------------------------------------------------------------------


@BOTH_DATABASES
def test_fork_splits_the_active_branch_into_untried_hypotheses(ctx):
    case, eng = ctx
    children = service.fork(
        case,
        "Three things could make the hook time out",
        options("DNS", "TLS handshake", "Slow handler"),
        actor=eng,
    )
    db.session.commit()
    root = service.root_of(case)
    assert [c.label for c in root.children] == ["DNS", "TLS handshake", "Slow handler"]
    assert [c.position for c in children] == [1, 2, 3]
    assert {c.status for c in children} == {"untried"}
    assert {c.fork_reason for c in children} == {"Three things could make the hook time out"}
    assert children[0].description == "maybe dns"
    assert case.active_branch_id == root.id  # forking does not switch
    (event,) = events(case, "branch.forked")
    assert event.actor == "eng@example.com"
    assert event.payload["branch_id"] == root.id
    assert event.payload["reason"] == "Three things could make the hook time out"
    assert [c["label"] for c in event.payload["children"]] == [
        "DNS",
        "TLS handshake",
        "Slow handler",
    ]
    assert "into 3 hypotheses" in event.payload["summary"]


@pytest.mark.parametrize(
    ("reason", "opts", "message"),
    [
        ("why", options("only one"), "2 to 10 hypotheses; 1 given"),
        ("why", options(*[f"H{i}" for i in range(11)]), "2 to 10 hypotheses; 11 given"),
        ("why", [], "2 to 10 hypotheses; 0 given"),
        ("why", [{"label": "A"}, {"label": "  ", "description": "x"}], "hypothesis 2 has no label"),
        ("why", [{"label": "Cache"}, {"label": "cache "}], "two hypotheses are labelled 'cache'"),
        ("why", [{"label": "A"}, "B"], "hypothesis 2 must be an object"),
        ("why", [{"label": "A"}, {"label": 7}], "hypothesis 2's label must be text"),
        ("why", [{"label": "A"}, {"label": "x" * 201}], "at most 200"),
        ("why", "A,B", "options must be a list"),
        ("  ", options("A", "B"), "reason is required"),
        (None, options("A", "B"), "reason is required"),
    ],
)
def test_fork_refuses_bad_input(ctx, reason, opts, message):
    case, eng = ctx
    with pytest.raises(BranchInputError, match=re.escape(message)) as refused:
        service.fork(case, reason, opts, actor=eng)
    assert refused.value.status_code == 400
    db.session.rollback()
    assert len(service.branches_of(case)) <= 1


def test_fork_refuses_a_dead_end_and_a_solved_active_branch(ctx):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    service.set_status(root, "dead_end", "nothing to see", actor=eng)
    with pytest.raises(BranchError, match="is dead end; revive it first") as refused:
        service.fork(case, "why", options("A", "B"), actor=eng)
    assert refused.value.status_code == 409
    db.session.rollback()
    root, _ = service.ensure_root(case)
    service.set_status(root, "solved", "restarted the worker", actor=eng)
    with pytest.raises(BranchError, match="is solved; switch to another branch"):
        service.fork(case, "why", options("A", "B"), actor=eng)


def test_fork_keeps_labels_distinct_and_a_branch_at_ten_hypotheses(ctx):
    case, eng = ctx
    forked(case, eng, *[f"H{i}" for i in range(1, 9)])
    with pytest.raises(BranchInputError, match="already has a hypothesis labelled 'H3'"):
        service.fork(case, "more", options("h3", "H9"), actor=eng)
    with pytest.raises(BranchError, match=r"already has 8 hypotheses .* at most 2 more"):
        service.fork(case, "more", options("H9", "H10", "H11"), actor=eng)
    db.session.rollback()
    forked(case, eng, "H9", "H10")  # a second fork of the same branch adds to it
    assert len(service.root_of(case).children) == 10
    assert [c.position for c in service.root_of(case).children] == list(range(1, 11))


def test_branch_limit_per_case_with_a_clear_refusal(ctx):
    case, eng = ctx
    first = forked(case, eng, *[f"A{i}" for i in range(10)])  # 11 branches
    service.switch(case, first[0], actor=eng)
    second = forked(case, eng, *[f"B{i}" for i in range(10)])  # 21
    service.switch(case, second[0], actor=eng)
    db.session.commit()
    with pytest.raises(BranchError) as refused:
        service.fork(case, "more", options("C1", "C2", "C3", "C4", "C5"), actor=eng)
    message = str(refused.value)
    assert refused.value.status_code == 409
    assert "at most 25 branches" in message and "BRANCH_LIMIT" in message
    assert "has 21" in message and "would make 26" in message
    assert "fork into at most 4 hypotheses" in message
    db.session.rollback()
    forked(case, eng, "C1", "C2", "C3", "C4")
    assert len(service.branches_of(case)) == 25
    service.switch(case, service.get_branch(case, second[1].id), actor=eng)
    with pytest.raises(BranchError, match="there is no room for another fork"):
        service.fork(case, "more", options("D1", "D2"), actor=eng)


def test_branch_limit_is_a_setting(app, ctx):
    case, eng = ctx
    app.config["BRANCH_LIMIT"] = 4
    with pytest.raises(BranchError, match="at most 4 branches"):
        service.fork(case, "why", options("A", "B", "C", "D"), actor=eng)


# --- Switch ---------------------------------------------------------------------------------


@BOTH_DATABASES
def test_switch_makes_an_untried_branch_active(ctx):
    case, eng = ctx
    dns, tls = forked(case, eng, "DNS", "TLS")
    root = service.root_of(case)
    previous = service.switch(case, dns, actor=eng)
    db.session.commit()
    assert previous.id == root.id
    assert case.active_branch_id == dns.id and dns.status == "active"
    service.switch(case, tls, actor=eng)
    assert dns.status == "active"  # worked, no verdict: stays active
    (first, _) = events(case, "branch.switched")
    assert first.actor == "eng@example.com"
    assert (first.payload["from_branch_id"], first.payload["branch_id"]) == (root.id, dns.id)
    assert first.payload["summary"] == "Switched from 'Root' to 'DNS'"


def test_switch_refuses_a_dead_end_and_the_active_branch(ctx):
    case, eng = ctx
    dns, _ = forked(case, eng, "DNS", "TLS")
    service.set_status(dns, "dead_end", "resolves fine from the worker", actor=eng)
    with pytest.raises(BranchError, match=r"'DNS' is a dead end .* revive it first"):
        service.switch(case, dns, actor=eng)
    with pytest.raises(BranchError, match="'Root' is already the active branch"):
        service.switch(case, service.root_of(case), actor=eng)


def test_switch_refuses_a_branch_of_another_case(ctx):
    case, eng = ctx
    other = Case(title="Other", provider="github")
    db.session.add(other)
    db.session.flush()
    ensure_root(other)  # as the case.opened subscriber does
    other_root, _ = service.ensure_root(other)
    with pytest.raises(BranchInputError, match="belongs to another case"):
        service.switch(case, other_root, actor=eng)


# --- Dead end, solved -----------------------------------------------------------------------


@BOTH_DATABASES
def test_mark_dead_end_and_solved_with_reasons(ctx):
    case, eng = ctx
    dns, tls = forked(case, eng, "DNS", "TLS")
    assert service.set_status(dns, "dead_end", "dig answers in 3 ms", actor=eng) is False
    offer = service.set_status(tls, "solved", "renewed the expired intermediate", actor=eng)
    db.session.commit()
    assert offer is True  # an open case may be resolved: the console offers it
    assert (dns.status, dns.reason) == ("dead_end", "dig answers in 3 ms")
    assert (tls.status, tls.badge) == ("solved", "solved")
    assert tls.summary == ""  # written by a task after the commit, not in the request
    assert run_due() == 2
    assert "Solved" in tls.summary and "renewed the expired intermediate" in tls.summary
    changes = events(case, "branch.status_changed")
    assert [(e.payload["from"], e.payload["to"]) for e in changes] == [
        ("untried", "dead_end"),
        ("untried", "solved"),
    ]
    assert changes[0].payload["reason"] == "dig answers in 3 ms"
    assert {e.actor for e in changes} == {"eng@example.com"}


@pytest.mark.parametrize(
    ("status", "reason", "error", "message"),
    [
        ("dead_end", "", BranchInputError, "reason is required"),
        ("solved", "   ", BranchInputError, "reason is required: say what solved it"),
        ("active", "x", BranchInputError, "status must be dead_end or solved"),
        ("wontfix", "x", BranchInputError, "status must be dead_end or solved"),
    ],
)
def test_status_refusals_for_input(ctx, status, reason, error, message):
    case, eng = ctx
    dns, _ = forked(case, eng, "DNS", "TLS")
    with pytest.raises(error, match=re.escape(message)):
        service.set_status(dns, status, reason, actor=eng)


def test_at_most_one_solved_branch(ctx):
    case, eng = ctx
    dns, tls = forked(case, eng, "DNS", "TLS")
    service.set_status(dns, "solved", "flushed the resolver cache", actor=eng)
    with pytest.raises(BranchError, match="'DNS' is already solved and a case has at most one"):
        service.set_status(tls, "solved", "renewed the cert", actor=eng)
    # The fix did not hold: DNS becomes a dead end, then TLS may be solved.
    service.set_status(dns, "dead_end", "timeouts came back an hour later", actor=eng)
    assert service.set_status(tls, "solved", "renewed the cert", actor=eng) is True


def test_status_refusals_for_state(ctx):
    case, eng = ctx
    dns, _ = forked(case, eng, "DNS", "TLS")
    service.set_status(dns, "dead_end", "fine", actor=eng)
    with pytest.raises(BranchError, match="'DNS' is already dead end"):
        service.set_status(dns, "dead_end", "still fine", actor=eng)
    with pytest.raises(BranchError, match="'DNS' is a dead end; revive it first"):
        service.set_status(dns, "solved", "it was DNS after all", actor=eng)


# --- Revive ---------------------------------------------------------------------------------


@BOTH_DATABASES
def test_revive_a_dead_end_with_evidence_from_another_branch(ctx):
    case, eng = ctx
    dns, tls = forked(case, eng, "DNS", "TLS")
    service.set_status(dns, "dead_end", "dig answers in 3 ms", actor=eng)
    service.switch(case, tls, actor=eng)
    service.revive(dns, tls, "TLS logs show SNI for an old hostname", actor=eng)
    db.session.commit()
    assert (dns.status, dns.badge, dns.reason) == ("active", "revived", None)
    assert dns.revived_from_id == tls.id and dns.revived_at is not None
    assert dns.revival_evidence == "TLS logs show SNI for an old hostname"
    (event,) = events(case, "branch.revived")
    assert event.actor == "eng@example.com"
    assert event.payload["evidence_from_branch_id"] == tls.id
    assert event.payload["dead_end_reason"] == "dig answers in 3 ms"
    service.switch(case, dns, actor=eng)  # a revived branch can be worked again
    assert case.active_branch_id == dns.id and dns.badge == "revived"


def test_revive_refusals(ctx):
    case, eng = ctx
    dns, tls = forked(case, eng, "DNS", "TLS")
    with pytest.raises(BranchError, match="only a dead end can be revived; 'DNS' is untried") as e:
        service.revive(dns, tls, "evidence", actor=eng)
    assert e.value.status_code == 409
    service.set_status(dns, "dead_end", "fine", actor=eng)
    with pytest.raises(BranchInputError, match="evidence is required"):
        service.revive(dns, tls, " ", actor=eng)
    with pytest.raises(BranchInputError, match="another branch, not the dead end"):
        service.revive(dns, dns, "evidence", actor=eng)
    with pytest.raises(BranchInputError, match="say which branch the evidence comes from"):
        service.revive(dns, None, "evidence", actor=eng)
    other = Case(title="Other", provider="github")
    db.session.add(other)
    db.session.flush()
    ensure_root(other)  # as the case.opened subscriber does
    other_root, _ = service.ensure_root(other)
    with pytest.raises(BranchInputError, match="belongs to another case"):
        service.revive(dns, other_root, "evidence", actor=eng)


# --- Notes and attachments ------------------------------------------------------------------


@BOTH_DATABASES
def test_notes_refresh_the_summary_and_write_their_event(ctx):
    case, eng = ctx
    dns, _ = forked(case, eng, "DNS", "TLS")
    note = service.add_note(dns, "Ran `dig billing.example.com`: 3 ms, right address.", actor=eng)
    db.session.commit()
    assert note.author_id == eng.id and note.case_id == case.id
    assert dns.status == "active"  # a note means someone works it
    task = latest_task(summaries.KIND, summaries.subject(dns))
    assert (task.status, task.payload) == ("queued", {"branch_id": dns.id})
    assert dns.summary == ""
    assert run_due() == 1
    assert "dig billing.example.com" in dns.summary
    (event,) = events(case, "note.added")
    assert event.actor == "eng@example.com"
    assert event.payload["note_id"] == note.id and event.payload["branch_id"] == dns.id
    assert event.payload["summary"].startswith("Note on 'DNS': Ran `dig")


def test_a_note_needs_text_or_a_file(ctx):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    with pytest.raises(BranchInputError, match="a note needs text, a file, or both"):
        service.add_note(root, "   ", [], actor=eng)
    with pytest.raises(BranchInputError, match="at most 50000"):
        service.add_note(root, "x" * 50_001, actor=eng)


@BOTH_DATABASES
def test_attachments_are_stored_and_text_is_kept(ctx, attachments_dir):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    log = b"2026-11-20 09:00:01 ERROR upstream timed out after 30s\n"
    note = service.add_note(
        root,
        "",
        [
            Upload("../../etc/worker.log", log, "text/plain"),
            Upload("shot.png", PNG, "image/png"),
            Upload("broken.conf", b"key = caf\xe9\n", ""),
        ],
        actor=eng,
    )
    db.session.commit()
    text_file, image, latin1 = note.attachments
    assert text_file.filename == "worker.log"  # never a path
    assert (text_file.size, text_file.content_type) == (len(log), "text/plain")
    assert text_file.text_content == log.decode()
    assert image.text_content is None and not image.is_text
    assert latin1.text_content == "key = caf\ufffd\n"  # decoded with replacement
    for attachment in note.attachments:
        stored = attachments_dir / attachment.storage_path
        assert stored.parent == attachments_dir / str(case.id)
        assert len(stored.name) == 32  # random: never a name the uploader chose
    assert (attachments_dir / text_file.storage_path).read_bytes() == log
    assert (attachments_dir / image.storage_path).read_bytes() == PNG
    (event,) = events(case, "note.added")
    assert event.payload["attachments"] == ["worker.log", "shot.png", "broken.conf"]
    # The writer's context carries the text of text files.
    (context,) = service.branches_for_context(case)
    assert context["notes"][0]["attachments"][0] == {"filename": "worker.log", "text": log.decode()}
    assert context["notes"][0]["attachments"][1] == {"filename": "shot.png", "text": None}


def test_attachment_size_limit_refuses_with_the_limit(app, ctx, attachments_dir):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    app.config["ATTACHMENT_MAX_BYTES"] = 1024
    with pytest.raises(AttachmentTooLarge, match=r"big\.log is over the 1 KiB limit") as refused:
        service.add_note(root, "see file", [Upload("big.log", b"x" * 1025)], actor=eng)
    assert refused.value.status_code == 413
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count(Attachment.id))) == 0
    assert not attachments_dir.exists() or not any(p.is_file() for p in attachments_dir.rglob("*"))
    service.add_note(root, "", [Upload("ok.log", b"x" * 1024)], actor=eng)  # at the limit: fine


def test_long_text_files_keep_a_capped_excerpt(ctx):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    big = b"line\n" * 60_000  # 300,000 bytes
    note = service.add_note(root, "", [Upload("big.log", big, "text/plain")], actor=eng)
    (attachment,) = note.attachments
    assert attachment.size == 300_000
    assert attachment.text_content.startswith("line\nline\n")
    assert len(attachment.text_content) < 200 * 1024 + 200
    assert "the first 200 KiB kept" in attachment.text_content


def test_too_many_files_per_note(ctx):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    files = [Upload(f"{i}.txt", b"x") for i in range(11)]
    with pytest.raises(BranchInputError, match="at most 10 files per note"):
        service.add_note(root, "many", files, actor=eng)


# --- Cross-branch context -------------------------------------------------------------------


def test_sibling_summaries_put_dead_ends_first(ctx):
    case, eng = ctx
    a, b, c, d, e = forked(case, eng, "A", "B", "C", "D", "E")
    service.add_note(b, "checked the B thing", actor=eng)
    service.set_status(d, "dead_end", "D ruled out by the packet capture", actor=eng)
    service.set_status(c, "dead_end", "C ruled out", actor=eng)
    service.set_status(e, "solved", "E fixed it", actor=eng)
    db.session.commit()
    run_due()
    siblings = service.sibling_summaries(a)
    assert [s["label"] for s in siblings] == ["C", "D", "E", "B"]
    assert [s["status"] for s in siblings] == ["dead_end", "dead_end", "solved", "active"]
    assert siblings[0]["reason"] == "C ruled out"
    assert "Dead end" in siblings[1]["summary"]
    assert "D ruled out by the packet capture" in siblings[1]["summary"]
    assert "checked the B thing" in siblings[3]["summary"]
    assert service.sibling_summaries(service.root_of(case)) == []


def test_branches_for_context_is_the_writers_shape_in_map_order(ctx):
    case, eng = ctx
    dns, tls = forked(case, eng, "DNS", "TLS")
    service.switch(case, dns, actor=eng)
    sub = forked(case, eng, "Resolver", "Hosts file")
    service.add_note(sub[0], "resolver caches for **5 min**", actor=eng)
    service.set_status(tls, "dead_end", "cert valid till 2027", actor=eng)
    context = service.branches_for_context(case)
    assert [b["label"] for b in context] == ["Root", "DNS", "Resolver", "Hosts file", "TLS"]
    resolver = context[2]
    for key in ("id", "label", "description", "status", "reason", "parent_id", "notes"):
        assert key in resolver
    assert resolver["parent_id"] == dns.id
    assert resolver["notes"][0]["text"] == "resolver caches for **5 min**"
    assert resolver["notes"][0]["author"] == "eng@example.com"
    assert resolver["notes"][0]["attachments"] == []
    assert context[4]["status"] == "dead_end" and context[4]["reason"] == "cert valid till 2027"
    assert [b["active"] for b in context] == [False, True, False, False, False]


def test_resolved_and_closed_cases_refuse_branch_work(ctx):
    case, eng = ctx
    dns, _ = forked(case, eng, "DNS", "TLS")
    case.status = "resolved"
    for attempt in (
        lambda: service.fork(case, "why", options("X", "Y"), actor=eng),
        lambda: service.switch(case, dns, actor=eng),
        lambda: service.set_status(dns, "dead_end", "x", actor=eng),
        lambda: service.add_note(dns, "late note", actor=eng),
    ):
        with pytest.raises(BranchError, match=f"case #{case.id} is resolved; reopen it"):
            attempt()


def test_a_failing_writer_keeps_the_previous_summary(ctx, monkeypatch):
    case, eng = ctx
    root, _ = service.ensure_root(case)
    service.add_note(root, "first look", actor=eng)
    db.session.commit()
    run_due()
    before = root.summary
    assert "first look" in before

    class Broken:
        name = "broken"

        def branch_summary(self, branch):
            raise RuntimeError("model unavailable")

    monkeypatch.setattr("app.writing.get_writer", lambda: Broken())
    service.add_note(root, "second look", actor=eng)
    db.session.commit()  # the note is in: the writer is not asked inside the request
    run_due()
    assert root.summary == before and len(root.notes) == 2
    task = latest_task(summaries.KIND, summaries.subject(root))
    assert task.status == "queued" and task.attempts == 1  # retried later
    assert task.last_error == "RuntimeError: model unavailable"


# --- The console ----------------------------------------------------------------------------


@pytest.fixture
def case_id(app):
    with app.app_context():
        case = Case(title="Deliveries to the billing hook time out", provider="github")
        db.session.add(case)
        db.session.commit()
        ensure_root(case)  # as the case.opened subscriber does
        db.session.commit()
        return case.id


HX = {"HX-Request": "true"}


def test_case_page_shows_the_map_with_its_root(engineer_client, case_id):
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="branch-map"' in page and "Branch map" in page
    assert re.search(r'class="branch-node branch-active is-active is-focus"[^>]*aria-current', page)
    assert "1 of 25 branches" in page
    assert "Fork Root into hypotheses" in page and "Add a note" in page


def test_viewers_read_the_map_without_forms(viewer_client, case_id):
    page = viewer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="branch-map"' in page and "working it needs the engineer role" in page
    assert "Add a note" not in page and "hx-post" not in page.split('id="branch-map"')[1]
    refused = viewer_client.post(f"/cases/{case_id}/branches/fork", headers=HX)
    assert refused.status_code == 403


def test_console_fork_switch_conclude_and_note_update_the_map_in_place(
    app, engineer_client, case_id, attachments_dir
):
    answer = engineer_client.post(
        f"/cases/{case_id}/branches/fork",
        data={"reason": "Two suspects", "label": ["DNS", "TLS", ""],
              "description": ["resolver", "", ""]},
        headers=HX,
    )  # fmt: skip
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="branch-map"')
    # The case page's panels (header, timeline, handoffs) reload on case-changed.
    assert json.loads(answer.headers["HX-Trigger"]) == {"case-changed": {"source": "branches"}}
    assert 'hx-trigger="case-refresh" data-case-panel="branches"' in html  # static/console.js
    with app.app_context():
        dns = db.session.scalar(db.select(Branch).where(Branch.label == "DNS"))
        dns_id = dns.id
    # One click on a branch switches to it.
    answer = engineer_client.post(f"/cases/{case_id}/branches/{dns_id}/switch", headers=HX)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert re.search(rf'is-active is-focus" data-branch-id="{dns_id}" aria-current="true"', html)
    assert "The other hypotheses" in html  # siblings' summaries
    # A note with a file (multipart, as hx-encoding sends it).
    answer = engineer_client.post(
        f"/cases/{case_id}/branches/{dns_id}/notes",
        data={"text": "dig is **fast**", "files": [(_bytes(b"resolv ok\n"), "dig.txt")]},
        headers=HX,
        content_type="multipart/form-data",
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "<strong>fast</strong>" in html and "dig.txt" in html
    assert re.search(r'href="/api/attachments/\d+" download>dig.txt', html)
    # Conclude: the map shows the verdict.
    answer = engineer_client.post(
        f"/cases/{case_id}/branches/{dns_id}/status",
        data={"status": "dead_end", "reason": "answers in 3 ms"},
        headers=HX,
    )
    html = answer.get_data(as_text=True)
    assert "Dead end:</strong> answers in 3 ms" in html
    assert "Revive this dead end" in html
    assert 'branch-badge-dead_end">dead end</span>' in html


def test_console_refusal_is_422_with_the_message_and_what_was_typed(engineer_client, case_id):
    answer = engineer_client.post(
        f"/cases/{case_id}/branches/fork",
        data={"reason": "Only one idea", "label": ["Lonely <b>idea</b>", ""],
              "description": ["", ""]},
        headers=HX,
    )  # fmt: skip
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert "A fork splits a branch into 2 to 10 hypotheses; 1 given." in html
    assert 'value="Only one idea"' in html
    assert 'value="Lonely &lt;b&gt;idea&lt;/b&gt;"' in html


def test_without_htmx_actions_redirect_to_the_case_page(engineer_client, case_id):
    answer = engineer_client.post(
        f"/cases/{case_id}/branches/fork", data={"reason": "x", "label": ["A"]}
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/cases/{case_id}#branches")
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "A fork splits a branch into 2 to 10 hypotheses" in page  # flashed
    fragment = engineer_client.get(f"/cases/{case_id}/branches")
    assert fragment.status_code == 302


def test_the_map_reads_well_at_25_branches_and_escapes_labels(app, engineer_client, case_id):
    with app.app_context():
        case = db.session.get(Case, case_id)
        first = service.fork(
            case, "why", options(*[f"<script>alert({i})</script>" for i in range(10)])
        )
        service.switch(case, first[0])
        second = service.fork(
            case, "why", options(*[f"<img src=x onerror=alert({i})>" for i in range(10)])
        )
        service.switch(case, second[0])
        service.fork(case, "why", options("A & B", '"quoted"', "C", "D"))
        service.set_status(first[1], "dead_end", "<b>nope</b>")
        db.session.commit()
        assert len(service.branches_of(case)) == 25
    answer = engineer_client.get(f"/cases/{case_id}/branches", headers=HX)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "HX-Request" in answer.headers["Vary"]
    assert html.count('class="branch-node') == 25
    assert html.count("<ul>") == 3  # three levels below the root
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "A &amp; B" in html and "&#34;quoted&#34;" in html
    assert "25 of 25 branches" in html
    assert "No room for another fork" in html


def test_markdown_in_notes_is_rendered_safely(app, engineer_client, case_id):
    with app.app_context():
        case = db.session.get(Case, case_id)
        root, _ = service.ensure_root(case)
        service.add_note(
            root,
            "# Tried\n\n<img src=x onerror=alert(1)> [click](javascript:alert(1)) "
            "[docs](https://example.com/doc) `<code>`",
        )
        db.session.commit()
    html = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    notes = html.split('id="branch-notes-h"')[1]
    assert "<h1>Tried</h1>" in notes
    assert "<img" not in notes and "javascript:" not in notes.split("Add a note")[0].replace(
        "[click](javascript:alert(1))", ""
    )
    assert 'href="https://example.com/doc" rel="noopener noreferrer nofollow"' in notes
    assert "<code>&lt;code&gt;</code>" in notes


def test_looking_at_another_branch_without_switching(app, viewer_client, case_id):
    with app.app_context():
        case = db.session.get(Case, case_id)
        dns, _ = service.fork(case, "why", options("DNS", "TLS"))
        service.set_status(dns, "dead_end", "fast")
        db.session.commit()
        dns_id = dns.id
    html = viewer_client.get(f"/cases/{case_id}/branches?branch={dns_id}", headers=HX).get_data(
        as_text=True
    )
    assert re.search(rf'is-focus" data-branch-id="{dns_id}"', html)
    assert "Dead end:</strong> fast" in html
    page = viewer_client.get(f"/cases/{case_id}?branch={dns_id}").get_data(as_text=True)
    assert '<h3 id="branch-focus-h">DNS' in page


def test_solving_offers_to_resolve_the_case(app, engineer_client, case_id):
    with app.app_context():
        case = db.session.get(Case, case_id)
        dns, _ = service.fork(case, "why", options("DNS", "TLS"))
        db.session.commit()
        dns_id = dns.id
    html = engineer_client.post(
        f"/cases/{case_id}/branches/{dns_id}/status",
        data={"status": "solved", "reason": "flushed the cache"},
        headers=HX,
    ).get_data(as_text=True)
    assert "Resolve the case" in html and "is solved: flushed the cache" in html


def _bytes(data: bytes):
    from io import BytesIO

    return BytesIO(data)


# --- In the browser -------------------------------------------------------------------------


@pytest.mark.browser
def test_the_map_updates_in_place_in_the_browser(
    app, request, make_user, attachments_dir, tmp_path
):
    base_url = request.getfixturevalue("live_server")
    make_user("engineer", "eng@example.com")
    with app.app_context():
        case = Case(title="Checkout webhooks fail with 502", provider="github")
        db.session.add(case)
        db.session.commit()
        ensure_root(case)  # as the case.opened subscriber does
        db.session.commit()
        case_id = case.id
    page = request.getfixturevalue("browser_page")
    _sign_in(page, base_url, "eng@example.com", f"/cases/{case_id}")
    page.evaluate("window.notReloaded = true")  # gone if the page reloads

    # A refusal shows in the form (422), with what was typed.
    form = page.locator("form.branch-fork")
    form.get_by_label("Why fork here?").fill("Only one idea")
    form.get_by_label("Hypothesis 1", exact=True).fill("Load balancer")
    form.get_by_role("button", name="Fork").click()
    page.get_by_role("alert").filter(has_text="2 to 10 hypotheses; 1 given").wait_for()
    form = page.locator("form.branch-fork")
    assert form.get_by_label("Hypothesis 1", exact=True).input_value() == "Load balancer"

    form.get_by_label("Why fork here?").fill("Three places a 502 can come from")
    for number, label in enumerate(["Load balancer", "App workers", "Database pool"], start=1):
        form.get_by_label(f"Hypothesis {number}", exact=True).fill(label)
    form.get_by_role("button", name="Fork").click()
    page.locator(".branch-node", has_text="Database pool").wait_for()
    assert page.locator(".branch-node").count() == 4

    # One click on a hypothesis makes it the active branch.
    page.locator(".branch-node", has_text="Load balancer").get_by_role("button").click()
    page.locator(".branch-node.is-active", has_text="Load balancer").wait_for()

    log = tmp_path / "lb.log"
    log.write_text("upstream prematurely closed connection\n")
    note = page.locator("form.branch-form", has_text="Add a note")
    note.get_by_label("What did you try").fill("LB idle timeout is **60 s**")
    note.locator("input[type=file]").set_input_files(str(log))
    note.get_by_role("button", name="Add note").click()
    page.locator(".branch-note", has_text="lb.log").wait_for()
    assert page.locator(".branch-note strong", has_text="60 s").is_visible()

    conclude = page.locator("form.branch-form", has_text="Conclude this branch")
    conclude.get_by_label("Why?").fill("LB timeouts match the app's")
    conclude.get_by_role("button", name="Conclude").click()
    page.locator(".branch-node.is-active .branch-badge", has_text="dead end").wait_for()
    page.get_by_text("Revive this dead end").wait_for()

    page.locator(".branch-node", has_text="App workers").get_by_role("button").click()
    page.locator(".branch-node.is-active", has_text="App workers").wait_for()
    siblings = page.locator(".branch-siblings li")
    assert siblings.first.inner_text().startswith("Load balancer")  # dead ends first
    # The timeline follows (the actions panel reloads on case-changed).
    page.locator("#timeline > li:first-child[data-type='branch.switched']").wait_for()
    assert page.evaluate("window.notReloaded") is True
