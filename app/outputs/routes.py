"""Console: resolve a case and work its resolution outputs (the case page's outputs panel).

Every action answers the panel fragment for htmx (422 with the reason inline when refused;
the timeline out of band when the case's events changed) and redirects back to the case
page for a plain form post. Resolving reloads the whole page (``HX-Refresh``): status,
actions, header and timeline all change at once.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from app.accounts.auth import require_role
from app.cases.lifecycle import CaseInputError, TransitionError
from app.cases.models import Case
from app.extensions import db
from app.inputs import id_arg
from app.outputs import bp, service
from app.outputs.models import ResolutionOutput
from app.outputs.panel import panel_context
from app.outputs.service import OutputConflict
from app.templating import htmx_response


@bp.get("/cases/<int:case_id>/outputs")
@require_role("viewer")
def panel(case_id: int):
    """The outputs panel (``tab``: kind shown; ``edit``: output id whose editor is open;
    ``poll=1``: the panel's own polling while the outputs are being written)."""
    case = _case(case_id)
    if not request.htmx:
        return redirect(_case_url(case, request.args.get("tab")))
    editing = request.args.get("edit", type=id_arg)
    if editing is not None and not current_user.has_role("engineer"):
        editing = None
    return _panel(
        case,
        tab=request.args.get("tab"),
        editing=editing,
        polled=request.args.get("poll") == "1",
    )


@bp.post("/cases/<int:case_id>/resolve")
@require_role("engineer")
def resolve(case_id: int):
    """Resolve the case with the form's ``summary``; the outputs are written by a worker."""
    case = _case(case_id)
    summary = request.form.get("summary", "")
    try:
        service.resolve_case(case, summary, actor=current_user)
    except (CaseInputError, TransitionError) as exc:
        db.session.rollback()
        return _refused(case, str(exc), draft=summary)
    flash(
        "Case resolved. The ticket notes, knowledge-base article and client summary are "
        "being written.",
        "info",
    )
    if request.htmx:
        # The whole page changes (status, actions, header, timeline): reload it. (A redirect
        # to the same page with only a #fragment would not reload.)
        response = current_app.response_class(status=204)
        response.headers["HX-Refresh"] = "true"
        return response
    return redirect(_case_url(case), code=303)


@bp.post("/cases/<int:case_id>/outputs/write")
@require_role("engineer")
def write(case_id: int):
    """Write all three outputs (again) for a resolved case: after a failed or lost job."""
    case = _case(case_id)
    try:
        service.request_write(case, actor=current_user)
    except OutputConflict as exc:
        return _refused(case, str(exc))
    return _done(case, None)


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/edit")
@require_role("engineer")
def edit(case_id: int, output_id: int):
    """Save the editor's Markdown (``content``): the output becomes an edited draft."""
    case, output = _output(case_id, output_id)
    content = request.form.get("content", "")
    try:
        changed = service.edit_output(output, content, actor=current_user)
        db.session.commit()
    except CaseInputError as exc:
        db.session.rollback()
        return _refused(case, str(exc), tab=output.kind, editing=output.id, draft=content)
    notice = f"{output.label} saved." if changed else "No changes to save."
    return _done(case, output.kind, notice=notice, timeline=changed)


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/status")
@require_role("engineer")
def decide(case_id: int, output_id: int):
    """Approve or reject a draft (form field ``status``)."""
    case, output = _output(case_id, output_id)
    try:
        service.set_status(output, request.form.get("status", ""), actor=current_user)
        db.session.commit()
    except (CaseInputError, OutputConflict) as exc:
        db.session.rollback()
        return _refused(case, str(exc), tab=output.kind)
    return _done(case, output.kind, notice=f"{output.label} {output.status}.", timeline=True)


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/push")
@require_role("engineer")
def push(case_id: int, output_id: int):
    """Push an approved output to the source or a subscription (form field ``target``)."""
    case, output = _output(case_id, output_id)
    try:
        notice = service.push_output(output, request.form.get("target"), actor=current_user)
        db.session.commit()
    except (CaseInputError, OutputConflict) as exc:
        db.session.rollback()
        return _refused(case, str(exc), tab=output.kind)
    return _done(case, output.kind, notice=notice, timeline=True)


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/regenerate")
@require_role("engineer")
def regenerate(case_id: int, output_id: int):
    """Write the output again (``keep_edits`` checked: an edited text stays as it is)."""
    case, output = _output(case_id, output_id)
    keep_edits = request.form.get("keep_edits") in ("1", "on", "true", "yes")
    service.request_regenerate(output, keep_edits, actor=current_user)
    return _done(case, output.kind)


@bp.get("/cases/<int:case_id>/outputs/<int:output_id>/download")
@require_role("viewer")
def download(case_id: int, output_id: int):
    """The output's Markdown as a file: ``case-<id>-<kind>.md``."""
    _, output = _output(case_id, output_id)
    return markdown_download(output)


def markdown_download(output: ResolutionOutput) -> Response:
    """A ``text/markdown`` attachment named ``case-<case id>-<kind>.md`` (console and API)."""
    response = current_app.response_class(
        output.content, mimetype="text/markdown", content_type="text/markdown; charset=utf-8"
    )
    response.headers["Content-Disposition"] = f"attachment; filename={output.filename}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# ---------------------------------------------------------------------------------------------


def _case(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


def _output(case_id: int, output_id: int) -> tuple[Case, ResolutionOutput]:
    case = _case(case_id)
    output = service.get_output(case, output_id)
    if output is None:
        abort(404, description=f"case {case_id} has no output {output_id}")
    return case, output


def _case_url(case: Case, tab: str | None = None) -> str:
    args: dict[str, Any] = {"output": tab} if tab else {}
    return url_for("cases.show", case_id=case.id, **args) + "#outputs-panel"


def _panel(case: Case, status: int = 200, *, timeline: bool = False, **context: Any) -> Response:
    """The panel fragment; with the timeline out of band when events were written (an action,
    or the poll that sees the writing finish)."""
    panel = panel_context(case, **context)
    html = render_template("outputs/_panel.html", case=case, **panel)
    if timeline or panel["resolution_refresh_timeline"]:
        db.session.expire(case, ["events"])
        html += render_template("outputs/_timeline_oob.html", case=case)
    return htmx_response(html, status)


def _done(case: Case, tab: str | None, *, notice: str | None = None, timeline: bool = False):
    if request.htmx:
        return _panel(case, tab=tab, notice=notice, timeline=timeline)
    if notice:
        flash(notice, "info")
    return redirect(_case_url(case, tab), code=303)


def _refused(case: Case, message: str, **context: Any):
    """422 with the panel showing ``message`` (htmx); a flash and the case page otherwise."""
    if request.htmx:
        return _panel(case, 422, error=message, **context)
    flash(message, "error")
    return redirect(_case_url(case, context.get("tab")), code=303)
