"""An escalation's assessment and a claim's briefing are written by tasks (kinds
``handoffs.assessment`` and ``handoffs.briefing``), never inside the request: escalating and
claiming hold the case row (``SELECT … FOR UPDATE``) until they commit, and the writer may
be an LLM that takes seconds. The request commits the handoff or the claim with its task;
the task reads the case, lets the writer work with no transaction open, and stores the
result in a short one.

A writer without assessments or briefings (``NotImplementedError``) is no failure: the
handoff then has no assessment, and the claim gets the briefing composed from the snapshot
(``plain_briefing``). Any other error fails the attempt (retried, then shown with a retry
button and in the API's ``*_task``).
"""

from __future__ import annotations

from typing import Any

from app import writing
from app.extensions import db
from app.handoffs.models import Handoff
from app.tasks import Task, create_task, latest_task, task_kind, task_state
from app.writing import Written
from app.writing.pieces import Piece, register_piece

ASSESSMENT = "handoffs.assessment"
BRIEFING = "handoffs.briefing"


def subject(handoff: Handoff) -> str:
    return f"handoff:{handoff.id}"


def request_assessment(handoff: Handoff, actor: Any = None) -> Task:
    """Ask for the escalation's assessment; the caller commits."""
    return create_task(ASSESSMENT, subject(handoff), {"handoff_id": handoff.id}, priority=20)


def request_briefing(handoff: Handoff, actor: Any = None) -> Task:
    """Ask for the claimer's briefing; the caller commits."""
    return create_task(BRIEFING, subject(handoff), {"handoff_id": handoff.id}, priority=10)


def task_fields(handoff: Handoff) -> dict:
    """``{"assessment_task", "briefing_task"}``: each ``{"id", "status", "attempts",
    "last_error"}`` of the newest task writing it, or None (for the JSON API)."""
    return {
        "assessment_task": task_state(latest_task(ASSESSMENT, subject(handoff))),
        "briefing_task": task_state(latest_task(BRIEFING, subject(handoff))),
    }


def _ask(method: str, *args: Any) -> Written | None:
    """The configured writer's ``method(*args)``; None when it has none."""
    try:
        return getattr(writing.get_writer(), method)(*args)
    except NotImplementedError:
        return None


@task_kind(ASSESSMENT, retry=(10, 60, 300), timeout=300)
def write_assessment(task: Task) -> dict:
    from app.handoffs.service import _normalise_assessment, _writer_context

    handoff = db.session.get(Handoff, task.payload["handoff_id"])
    if handoff is None:
        return {"skipped": "the handoff is gone"}
    context = _writer_context(handoff.case)
    db.session.rollback()  # no transaction (and no lock) while the writer works
    written = _ask("assessment", context)
    handoff = db.session.get(Handoff, task.payload["handoff_id"])
    if handoff is None:
        return {"skipped": "the handoff is gone"}
    assessment = _normalise_assessment(written.data if written is not None else None)
    handoff.assessment = assessment
    if assessment is not None:
        handoff.writer = written.written_by
    return {"written_by": written.written_by if assessment is not None else None}


@task_kind(BRIEFING, retry=(10, 60, 300), timeout=300)
def write_briefing(task: Task) -> dict:
    from app.handoffs.service import _handoff_for_writer, _writer_context, plain_briefing

    handoff = db.session.get(Handoff, task.payload["handoff_id"])
    if handoff is None:
        return {"skipped": "the handoff is gone"}
    context, about = _writer_context(handoff.case), _handoff_for_writer(handoff)
    db.session.rollback()  # no transaction (and no lock) while the writer works
    written = _ask("briefing", context, about)
    handoff = db.session.get(Handoff, task.payload["handoff_id"])
    if handoff is None:
        return {"skipped": "the handoff is gone"}
    if written is not None and written.text.strip():
        handoff.briefing, handoff.writer = written.text.strip(), written.written_by
        return {"written_by": written.written_by}
    handoff.briefing = plain_briefing(handoff)
    return {"written_by": "snapshot"}


def _load(case: Any, row_id: int) -> Handoff | None:
    return db.session.scalar(
        db.select(Handoff).where(Handoff.id == row_id, Handoff.case_id == case.id)
    )


register_piece(
    Piece("assessment", ASSESSMENT, "handoffs/_assessment.html", _load, subject, request_assessment)
)
register_piece(
    Piece("briefing", BRIEFING, "handoffs/_briefing.html", _load, subject, request_briefing)
)
