"""The timeline's sentences (app/cases/timeline.py): one per event type in
app/events/schemas, from the payloads the features really write."""

from __future__ import annotations

from importlib import resources

import pytest

from app.cases.timeline import SYSTEM, event_sentence, event_text

JANE = "jane@example.com"

#: One real-shaped payload per event type, and the sentence it must read as.
EXAMPLES: dict[str, tuple[dict, str]] = {
    "case.opened": (
        {"event_type": "issues.opened", "title": "Typo", "summary": "Codertocat opened the issue"},
        "GitHub opened the case: Codertocat opened the issue",
    ),
    "case.updated": (
        {"event_type": "issue_comment.created", "title": "Typo", "summary": "Ann commented"},
        "GitHub: Ann commented",
    ),
    "case.acknowledged": ({}, f"{JANE} acknowledged the case"),
    "case.assigned": (
        {"assignee": "bob@example.com"},
        f"{JANE} assigned the case to bob@example.com",
    ),
    "case.callback": (
        {"action": "note", "note": "ticket 42 updated", "via": "servicedesk"},
        f"{JANE} added a note",
    ),
    "case.claimed": (
        {"from": "escalated", "to": "open", "handoff_id": 3, "intent": "escalate"},
        f"{JANE} claimed the escalation; the case is open again",
    ),
    "case.closed": (
        {"from": "open", "to": "closed", "reason": "manual"},
        f"{JANE} closed the case",
    ),
    "case.escalated": (
        {
            "from": "open",
            "to": "escalated",
            "intent": "escalate",
            "summary": "Escalated to db@example.com (elevated): replica lag",
        },
        f"{JANE} escalated the case to db@example.com (elevated): replica lag",
    ),
    "case.parked": (
        {
            "from": "open",
            "to": "parked",
            "intent": "park",
            "summary": "Parked, waiting on the vendor: they are checking their CDN",
        },
        f"{JANE} parked the case, waiting on the vendor: they are checking their CDN",
    ),
    "case.reactivated": (
        {"from": "parked", "to": "open"},
        f"{JANE} made the case open again (it was parked)",
    ),
    "case.reopened": (
        {"from": "closed", "to": "open"},
        f"{JANE} reopened the case (it was closed)",
    ),
    "case.replied": (
        {"outcome": "posted", "text": "Looking into it", "task_id": "t1", "url": "https://x/1"},
        f"{JANE} replied to the source",
    ),
    "case.resolved": (
        {"from": "open", "to": "resolved", "summary": "Rolled back 1.4.2"},
        f"{JANE} resolved the case",
    ),
    "case.severity_changed": (
        {"from": "info", "to": "critical"},
        f"{JANE} changed the severity from info to critical",
    ),
    "case.tagged": (
        {"tags": ["db"], "added": ["db"], "removed": ["prod"]},
        f"{JANE} tagged the case db and removed the tag prod",
    ),
    "note.added": (
        {
            "branch_id": 1,
            "branch": "Bad deploy",
            "note_id": 2,
            "attachments": [],
            "summary": "Note on 'Bad deploy': rolled back, **no change**",
        },
        f"{JANE} added a note on 'Bad deploy'",
    ),
    "branch.forked": (
        {
            "branch_id": 1,
            "branch": "Initial investigation",
            "reason": "two ideas",
            "children": [{"id": 2, "label": "Bad deploy"}, {"id": 3, "label": "DB"}],
            "summary": "Forked ...",
        },
        f"{JANE} forked 'Initial investigation' into 'Bad deploy' and 'DB': two ideas",
    ),
    "branch.revived": (
        {
            "branch_id": 2,
            "branch": "Bad deploy",
            "evidence_from_branch_id": 3,
            "evidence_from": "DB",
            "evidence": "the DB was fine",
            "summary": "Revived ...",
        },
        f"{JANE} revived 'Bad deploy' on evidence from 'DB'",
    ),
    "branch.status_changed": (
        {
            "branch_id": 2,
            "branch": "Bad deploy",
            "from": "active",
            "to": "dead_end",
            "reason": "rollback did not change the 502 rate",
            "summary": "Marked ...",
        },
        f"{JANE} marked 'Bad deploy' a dead end: rollback did not change the 502 rate",
    ),
    "branch.switched": (
        {"branch_id": 3, "branch": "DB", "from_branch_id": 2, "from": "Bad deploy", "summary": "S"},
        f"{JANE} switched to 'DB' from 'Bad deploy'",
    ),
    "output.generated": (
        {
            "output_id": 1,
            "kind": "client_summary",
            "writer": "builtin",
            "regenerated": False,
            "kept_edits": False,
            "summary": "Client summary written by builtin",
        },
        "Casehook wrote the client summary",
    ),
    "output.edited": (
        {"output_id": 1, "kind": "ticket_notes", "from": "draft", "summary": "Ticket notes edited"},
        f"{JANE} edited the ticket notes",
    ),
    "output.approved": (
        {"output_id": 1, "kind": "kb_article", "summary": "approved"},
        f"{JANE} approved the knowledge-base article",
    ),
    "output.rejected": (
        {"output_id": 1, "kind": "kb_article", "summary": "rejected"},
        f"{JANE} rejected the knowledge-base article",
    ),
    "output.pushed": (
        {
            "output_id": 1,
            "kind": "ticket_notes",
            "target": "source",
            "summary": "Ticket notes pushed to the source",
        },
        f"{JANE} sent the ticket notes to the source",
    ),
    "agent.run_requested": (
        {"run_id": 1, "agent": "diag", "summary": "Agent diag queued"},
        f"{JANE} asked for a run of the agent diag",
    ),
    "agent.run_approved": (
        {"run_id": 1, "agent": "diag", "summary": "s"},
        f"{JANE} approved a run of the agent diag",
    ),
    "agent.run_rejected": (
        {"run_id": 1, "agent": "diag", "summary": "s"},
        f"{JANE} rejected a run of the agent diag",
    ),
    "agent.run_cancelled": (
        {"run_id": 1, "agent": "diag", "summary": "s"},
        f"{JANE} cancelled a run of the agent diag",
    ),
    "agent.run_finished": (
        {"run_id": 1, "agent": "diag", "status": "succeeded", "exit_code": 0, "summary": "s"},
        "The agent diag succeeded (exit code 0)",
    ),
}
#: Who the examples' events are by: a person, or the source for delivery-made ones.
ACTORS = {"case.opened": "GitHub", "case.updated": "GitHub", "output.generated": None}


def _schema_types() -> set[str]:
    folder = resources.files("app.events").joinpath("schemas")
    return {e.name.removesuffix(".json") for e in folder.iterdir() if e.name.endswith(".json")}


def test_every_event_type_has_an_example():
    assert set(EXAMPLES) == _schema_types()


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_sentence(type_):
    payload, sentence = EXAMPLES[type_]
    assert event_sentence(type_, payload, ACTORS.get(type_, JANE)) == sentence


def test_texts_are_the_markdown_the_event_carries():
    assert event_text("note.added", EXAMPLES["note.added"][0]) == "rolled back, **no change**"
    assert event_text("case.replied", EXAMPLES["case.replied"][0]) == "Looking into it"
    assert event_text("case.resolved", EXAMPLES["case.resolved"][0]) == "Rolled back 1.4.2"
    assert event_text("case.closed", {"reason": "manual", "note": "duplicate of #12"}) == (
        "duplicate of #12"
    )
    assert event_text("branch.revived", EXAMPLES["branch.revived"][0]) == "the DB was fine"
    assert event_text("case.assigned", {"assignee": None}) == ""


def test_other_shapes():
    assert event_sentence("case.assigned", {"assignee": JANE}, JANE) == f"{JANE} took the case"
    assert (
        event_sentence("case.assigned", {"assignee": None}, JANE) == f"{JANE} unassigned the case"
    )
    inactive = {"from": "open", "to": "parked", "rule": "inactivity", "hours": 48, "action": "park"}
    assert event_sentence("case.parked", inactive) == (
        f"{SYSTEM} parked the case after 48 h without activity"
    )
    assert event_sentence(
        "case.replied", {"outcome": "failed", "status_code": 404, "error": "no such issue"}
    ) == ("A reply to the source failed (404): no such issue")
    assert event_sentence("output.generated", {"kind": "kb_article", "regenerated": True}) == (
        f"{SYSTEM} rewrote the knowledge-base article"
    )


@pytest.mark.parametrize("payload", [{}, None, {"summary": 3, "branch": ["x"], "children": "y"}])
@pytest.mark.parametrize("type_", [*sorted(EXAMPLES), "made.up"])
def test_odd_payloads_still_read(type_, payload):
    assert event_sentence(type_, payload, JANE)
    assert isinstance(event_text(type_, payload), str)


def test_unknown_types_fall_back_to_their_summary_then_their_type():
    assert event_sentence("made.up", {"summary": "Something"}, JANE) == f"{JANE}: Something"
    assert event_sentence("made.up", {}, None) == f"{SYSTEM}: made.up"
