"""Console: the branch map partial and its actions (fork, switch, conclude, revive, notes).

Every action answers the map again (htmx swaps ``#branch-map`` in place); a refusal answers
422 with the map showing the message in the form that caused it, and what was typed. Without
htmx (a plain form post), the answer is a redirect to the case page, with a flash on refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from app.accounts.auth import require_role
from app.branches import bp, service
from app.branches.models import Branch
from app.branches.panel import map_context
from app.branches.service import BranchError
from app.cases.models import Case
from app.extensions import db
from app.inputs import id_arg
from app.templating import htmx_response

#: Sent after every branch action: ``case-changed`` is what the case page's panels listen
#: for (``data-case-panel``: static/console.js reloads the others).
CASE_CHANGED = json.dumps({"case-changed": {"source": "branches"}})


@bp.get("/cases/<int:case_id>/branches")
@require_role("viewer")
def branch_map(case_id: int):
    """The map fragment; ``?branch=<id>`` shows that branch's notes without switching."""
    case = _case(case_id)
    focus = request.args.get("branch", type=id_arg)
    if not request.htmx:
        return redirect(_case_url(case, focus))
    return _render(case, focus)


@bp.post("/cases/<int:case_id>/branches/fork")
@require_role("engineer")
def fork(case_id: int):
    """Fork the active branch: form fields ``reason``, and ``label``/``description`` repeated
    (rows with both empty are skipped)."""
    case = _case(case_id)
    labels, descriptions = request.form.getlist("label"), request.form.getlist("description")
    options = [
        {"label": label, "description": description}
        for label, description in zip(labels, descriptions, strict=False)
        if label.strip() or description.strip()
    ]
    return _act(
        case,
        "fork",
        lambda: service.fork(case, request.form.get("reason", ""), options, actor=current_user),
        focus=lambda: case.active_branch_id,
    )


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/switch")
@require_role("engineer")
def switch(case_id: int, branch_id: int):
    case = _case(case_id)
    branch = _branch(case, branch_id)
    return _act(case, "switch", lambda: service.switch(case, branch, actor=current_user),
                focus=lambda: branch.id, error_focus=branch.id)  # fmt: skip


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/status")
@require_role("engineer")
def set_status(case_id: int, branch_id: int):
    """Mark a branch a dead end or solved: form fields ``status``, ``reason``."""
    case = _case(case_id)
    branch = _branch(case, branch_id)
    return _act(
        case,
        "status",
        lambda: service.set_status(
            branch,
            request.form.get("status", ""),
            request.form.get("reason", ""),
            actor=current_user,
        ),
        focus=lambda: branch.id,
        error_focus=branch.id,
    )


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/revive")
@require_role("engineer")
def revive(case_id: int, branch_id: int):
    """Revive a dead end: form fields ``evidence_from_branch_id``, ``evidence``."""
    case = _case(case_id)
    branch = _branch(case, branch_id)
    source_id = request.form.get("evidence_from_branch_id", type=id_arg)
    source = service.get_branch(case, source_id) if source_id else None
    return _act(
        case,
        "revive",
        lambda: service.revive(
            branch, source, request.form.get("evidence", ""), actor=current_user
        ),
        focus=lambda: branch.id,
        error_focus=branch.id,
    )


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/notes")
@require_role("engineer")
def add_note(case_id: int, branch_id: int):
    """Add a note: form field ``text`` and files ``files`` (multipart)."""
    case = _case(case_id)
    branch = _branch(case, branch_id)
    files = [f for f in request.files.getlist("files") if f and f.filename]
    return _act(
        case,
        "note",
        lambda: service.add_note(branch, request.form.get("text", ""), files, actor=current_user),
        focus=lambda: branch.id,
        error_focus=branch.id,
    )


def _act(
    case: Case,
    form: str,
    action: Callable[[], Any],
    *,
    focus: Callable[[], int | None],
    error_focus: int | None = None,
):
    """Run ``action``, commit, answer the map; on a refusal roll back and answer the map
    with the message in ``form`` (422), or redirect with a flash without htmx."""
    try:
        action()
        db.session.commit()
    except BranchError as refusal:
        db.session.rollback()
        if not request.htmx:
            flash(_sentence(str(refusal)), "error")
            return redirect(_case_url(case, error_focus))
        return _render(case, error_focus, errors={form: _sentence(str(refusal))},
                       values=request.form, status=422)  # fmt: skip
    if not request.htmx:
        return redirect(_case_url(case, focus()))
    return _render(case, focus())


def _render(
    case: Case,
    focus: int | None,
    *,
    errors: dict | None = None,
    values: MultiDict | None = None,
    status: int = 200,
):
    context = map_context(case, focus, errors=errors, values=values)
    response = htmx_response(render_template("branches/_map.html", case=case, **context), status)
    if request.method == "POST" and status == 200:
        # The case page's convention: the actions panel (header, timeline) and the other
        # panels reload themselves; the map skips its own announcement (source).
        response.headers["HX-Trigger"] = CASE_CHANGED
    return response


def _case(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


def _branch(case: Case, branch_id: int) -> Branch:
    branch = service.get_branch(case, branch_id)
    if branch is None:
        abort(404, description=f"case #{case.id} has no branch {branch_id}")
    return branch


def _case_url(case: Case, focus: int | None) -> str:
    args = {"branch": focus} if focus and focus != case.active_branch_id else {}
    return url_for("cases.show", case_id=case.id, **args, _anchor="branches")


def _sentence(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."
