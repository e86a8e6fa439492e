"""``/api/cases/<id>/resolve`` and ``/api/cases/<id>/outputs``: resolution outputs (C6).

Engineers write, viewers read. Refusals are ``{"error", "detail", "field"?}``: 400 what was
sent cannot be used, 404 no such case or output, 409 the case's status
(``illegal_transition``, with ``status`` and ``allowed``) or the output's
(``output_conflict``) does not allow it.
"""

from __future__ import annotations

from flask import Response, abort, request
from flask_login import current_user

from app.accounts.auth import require_role
from app.api import bp
from app.api.common import case_or_404
from app.api.schemas.cases import Case
from app.api.schemas.outputs import (
    Output,
    OutputPatch,
    Outputs,
    PushBody,
    Pushed,
    RegenerateBody,
    Regenerating,
    ResolveBody,
    Resolving,
    Writing,
)
from app.api.schemas.tasks import TaskState
from app.api.spec import InvalidInput, operation, parse_body
from app.extensions import db
from app.outputs import service
from app.outputs.jobs import writing_state
from app.outputs.models import ResolutionOutput
from app.outputs.routes import markdown_download


@bp.post("/cases/<int:case_id>/resolve")
@require_role("engineer")
@operation(body=ResolveBody, responses={202: Resolving}, tag="outputs")
def resolve_case(case_id: int, body: ResolveBody) -> tuple[Resolving, int]:
    """Resolve the case with what fixed it; a task writes the outputs (committed with the
    resolution)."""
    case = case_or_404(case_id)
    service.resolve_case(case, body.summary, actor=current_user)
    return Resolving(case=Case.of(case), outputs="pending"), 202


@bp.get("/cases/<int:case_id>/outputs")
@require_role("viewer")
@operation(responses={200: Outputs}, tag="outputs")
def list_outputs(case_id: int) -> Outputs:
    """The case's outputs and where writing them stands: ``pending`` (a task is writing),
    ``ready``, ``failed`` (``detail`` says why) or ``none`` (never written)."""
    case = case_or_404(case_id)
    outputs = service.outputs_of(case)
    state = writing_state(case.id, since=max((o.generated_at for o in outputs), default=None))
    status = state["state"]
    if status == "idle":
        status = "ready" if outputs else "none"
    return Outputs(
        status=status,
        outputs=[Output.of(o) for o in outputs],
        detail=state["detail"],
        task=TaskState.of(state["task"]),
    )


@bp.post("/cases/<int:case_id>/outputs")
@require_role("engineer")
@operation(responses={202: Writing}, tag="outputs")
def write_outputs(case_id: int) -> tuple[Writing, int]:
    """Write all three again (a resolved or closed case)."""
    case = case_or_404(case_id)
    service.request_write(case, actor=current_user)
    return Writing(case_id=case.id, outputs="pending"), 202


@bp.patch("/cases/<int:case_id>/outputs/<int:output_id>")
@require_role("engineer")
@operation(body=OutputPatch, responses={200: Output}, tag="outputs")
def update_output(case_id: int, output_id: int, body: OutputPatch) -> Output:
    """Edit the Markdown (``content``: the output becomes an edited draft) and/or decide
    (``status``: approved or rejected, for a draft)."""
    output = _output(case_id, output_id)
    if body.content is None and body.status is None:
        raise InvalidInput(
            'send {"content": "..."} to edit or {"status": "approved"|"rejected"} to decide'
        )
    if body.content is not None:
        service.edit_output(output, body.content, actor=current_user)
    if body.status is not None:
        service.set_status(output, body.status, actor=current_user)
    db.session.commit()
    return Output.of(output)


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/regenerate")
@require_role("engineer")
@operation(
    body=RegenerateBody, responses={202: Regenerating}, tag="outputs", parse_body_first=False
)
def regenerate_output(case_id: int, output_id: int) -> tuple[Regenerating, int]:
    """Write this output again; ``keep_edits`` keeps the edited Markdown. The body may be
    left out."""
    output = _output(case_id, output_id)
    body = parse_body(RegenerateBody) if request.get_data() else RegenerateBody()
    service.request_regenerate(output, body.keep_edits, actor=current_user)
    return Regenerating(output=Output.of(output), status="pending"), 202


@bp.post("/cases/<int:case_id>/outputs/<int:output_id>/push")
@require_role("engineer")
@operation(body=PushBody, responses={202: Pushed}, tag="outputs")
def push_output(case_id: int, output_id: int, body: PushBody) -> tuple[Pushed, int]:
    """Send an approved output to the source as a comment, or to a subscription
    (``output.pushed``)."""
    output = _output(case_id, output_id)
    detail = service.push_output(output, body.target, actor=current_user)
    db.session.commit()
    return Pushed(output=Output.of(output), detail=detail), 202


@bp.get("/cases/<int:case_id>/outputs/<int:output_id>/download")
@require_role("viewer")
@operation(responses={200: None}, files={200: "text/markdown"}, tag="outputs")
def download_output(case_id: int, output_id: int) -> Response:
    """The Markdown as an attachment (``text/markdown``)."""
    return markdown_download(_output(case_id, output_id))


def _output(case_id: int, output_id: int) -> ResolutionOutput:
    output = service.get_output(case_or_404(case_id), output_id)
    if output is None:
        abort(404, description=f"case {case_id} has no output {output_id}")
    return output
