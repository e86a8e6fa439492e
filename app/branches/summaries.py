"""Branch summaries are written by a task (kind ``writing.branch_summary``), never inside the
request that added the note or concluded the branch: the writer may be an LLM that takes
seconds, and the request holds the case row (``_check_workable``) until it commits.

``request_summary(branch)`` adds the task to the caller's transaction; after the commit a
worker reads the branch, lets the writer work with no transaction open, and stores the
text in a short one. A branch changed while its summary was being written (another note)
is written again from the latest facts before the task ends.
"""

from __future__ import annotations

from typing import Any

from app import writing
from app.branches.models import Branch
from app.extensions import db
from app.tasks import Task, create_task, latest_task, task_kind
from app.writing.pieces import Piece, register_piece

KIND = "writing.branch_summary"
#: How many times a task writes again when the branch keeps changing under it.
REWRITES = 3


def subject(branch: Branch) -> str:
    return f"branch:{branch.id}"


def request_summary(branch: Branch, actor: Any = None) -> Task:
    """Ask for ``branch``'s summary to be (re)written; the caller commits.

    A queued task is reused (it will read the latest notes). A running one may already be
    past its last look at the branch, so a new task follows it.
    """
    latest = latest_task(KIND, subject(branch))
    following = latest is not None and latest.status == "running"
    return create_task(
        KIND, subject(branch), {"branch_id": branch.id}, priority=50, dedup=not following
    )


@task_kind(KIND, retry=(10, 60, 300), timeout=300)
def write_summary(task: Task) -> dict:
    """Write the summary of ``task.payload["branch_id"]``; ``{"written_by"}`` (or
    ``{"skipped": why}`` when the branch is gone)."""
    from app.branches.service import branch_dict

    branch_id = task.payload["branch_id"]
    for _ in range(REWRITES):
        branch = db.session.get(Branch, branch_id)
        if branch is None:
            return {"skipped": "the branch is gone"}
        facts, seen = branch_dict(branch), branch.updated_at
        db.session.rollback()  # no transaction (and no lock) while the writer works
        written = writing.get_writer().branch_summary(facts)
        branch = db.session.get(Branch, branch_id)
        if branch is None:
            return {"skipped": "the branch is gone"}
        if branch.updated_at == seen:
            break
        db.session.rollback()  # a note or verdict came meanwhile: write from the latest
    branch.summary = written.text
    return {"written_by": written.written_by, "fallback_reason": written.fallback_reason}


register_piece(
    Piece(
        name="branch-summary",
        task_kind=KIND,
        template="branches/_summary.html",
        load=lambda case, row_id: db.session.scalar(
            db.select(Branch).where(Branch.id == row_id, Branch.case_id == case.id)
        ),
        subject=subject,
        request=request_summary,
    )
)
