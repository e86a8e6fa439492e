"""``/api/cases/<id>/resolve`` and ``/api/cases/<id>/outputs``: resolution outputs (C6).

- ``POST /api/cases/<id>/resolve`` ``{"summary"}`` → 202 ``{"case", "outputs": "pending"}``
  (the task writing them is committed with the resolution); 400 without a summary; 409
  when the case cannot be resolved from its status.
- ``GET /api/cases/<id>/outputs`` → ``{"status": "pending"|"ready"|"failed"|"none",
  "outputs": [output...], "task": {"id", "status", "attempts", "last_error"}|null}``
  (``"detail"`` when failed; ``task``: the newest task writing them).
- ``POST /api/cases/<id>/outputs`` → 202: write all three again (a resolved/closed case).
- ``PATCH /api/cases/<id>/outputs/<oid>`` ``{"content"}`` and/or ``{"status": "approved" |
  "rejected"}`` → the output.
- ``POST /api/cases/<id>/outputs/<oid>/regenerate`` ``{"keep_edits": bool}`` → 202.
- ``POST /api/cases/<id>/outputs/<oid>/push`` ``{"target": "source" | "subscription:<id>"}``
  → 202 ``{"output", "detail"}``: an approved output goes to the source as a comment, or to
  a subscription (``output.pushed``); 409 when it is not approved, 400 for a bad target.
- ``GET /api/cases/<id>/outputs/<oid>/download`` → the Markdown as an attachment.

Errors are ``{"error", "detail"}``; engineers write, viewers read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import abort, jsonify, request
from flask_login import current_user

from app.accounts.auth import require_role
from app.api import bp
from app.api.common import SEND_JSON_OBJECT, case_or_404, illegal_transition, json_body
from app.cases.lifecycle import CaseInputError, TransitionError
from app.extensions import db
from app.outputs import service
from app.outputs.jobs import writing_state
from app.outputs.models import ResolutionOutput
from app.outputs.routes import markdown_download
from app.outputs.service import OutputConflict


@bp.post("/cases/<int:case_id>/resolve")
@require_role("engineer")
def resolve_case(case_id: int):
    case = case_or_404(case_id)
    body = _body('{"summary": "what fixed it"}')
    summary = body.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        abort(400, description='a resolution summary is required: {"summary": "what fixed it"}')
    try:
        service.resolve_case(case, summary, actor=current_user)
    except TransitionError as exc:
        db.session.rollback()
        return illegal_transition(case, exc)
    except CaseInputError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    return jsonify({"case": case.to_dict(), "outputs": "pending"}), 202


@bp.get("/cases/<int:case_id>/outputs")
@require_role("viewer")
def list_outputs(case_id: int):
    case = case_or_404(case_id)
    outputs = service.outputs_of(case)
    state = writing_state(case.id, since=max((o.generated_at for o in outputs), default=None))
    status = state["state"]
    if status == "idle":
        status = "ready" if outputs else "none"
    answer = {"status": status, "outputs": [o.to_dict() for o in outputs]}
    if state["detail"]:
        answer["detail"] = state["detail"]
    answer["task"] = state["task"]
    return jsonify(answer)


@bp.post("/cases/<int:case_id>/outputs")
@require_role("engineer")
def write_outputs(case_id: int):
    case = case_or_404(case_id)
    try:
        service.request_write(case, actor=current_user)
    except OutputConflict as exc:
        abort(409, description=str(exc))
    return jsonify({"case_id": case.id, "outputs": "pending"}), 202


@bp.patch("/cases/<int:case_id>/outputs/<int:output_id>")
@require_role("engineer")
def update_output(case_id: int, output_id: int):
    output = _output(case_id, output_id)
    body = _body('{"content": "..."} or {"status": "approved"|"rejected"}')
    unknown = sorted(set(body) - {"content", "status"})
    if unknown:
        abort(400, description=f"unknown field(s) {', '.join(unknown)}; send content or status")
    if "content" not in body and "status" not in body:
        abort(
            400,
            description='send {"content": "..."} to edit or {"status": "approved"|'
            '"rejected"} to decide',
        )
    with _committed():
        if "content" in body:
            if not isinstance(body["content"], str):
                raise service.OutputInputError("content must be a string of Markdown")
            service.edit_output(output, body["content"], actor=current_user)
        if "status" in body:
            service.set_status(output, body["status"], actor=current_user)
    return jsonify(output.to_dict())


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/regenerate")
@require_role("engineer")
def regenerate_output(case_id: int, output_id: int):
    output = _output(case_id, output_id)
    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict):
        abort(400, description='send a JSON object: {"keep_edits": true|false}')
    keep_edits = body.get("keep_edits", False)
    if not isinstance(keep_edits, bool):
        abort(400, description="keep_edits must be true or false")
    service.request_regenerate(output, keep_edits, actor=current_user)
    return jsonify({"output": output.to_dict(), "status": "pending"}), 202


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/push")
@require_role("engineer")
def push_output(case_id: int, output_id: int):
    output = _output(case_id, output_id)
    body = json_body('send {"target": "source" | "subscription:<id>"}')
    with _committed():
        detail = service.push_output(output, body.get("target"), actor=current_user)
    return jsonify({"output": output.to_dict(), "detail": detail}), 202


@bp.get("/cases/<int:case_id>/outputs/<int:output_id>/download")
@require_role("viewer")
def download_output(case_id: int, output_id: int):
    return markdown_download(_output(case_id, output_id))


# ---------------------------------------------------------------------------------------------


@contextmanager
def _committed() -> Iterator[None]:
    """Commit what the block changed; a refusal rolls it back and answers 400
    (``CaseInputError``: what was sent) or 409 (``OutputConflict``: the output's state)."""
    try:
        yield
        db.session.commit()
    except CaseInputError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    except OutputConflict as exc:
        db.session.rollback()
        abort(409, description=str(exc))


def _output(case_id: int, output_id: int) -> ResolutionOutput:
    output = service.get_output(case_or_404(case_id), output_id)
    if output is None:
        abort(404, description=f"case {case_id} has no output {output_id}")
    return output


def _body(example: str) -> dict:
    return json_body(f"{SEND_JSON_OBJECT}: {example}")
