"""``/api/cases/<id>/branches``: the branch map as JSON, its actions, and attachment downloads.

Refusals are ``{"error", "detail", "field"?}``: 400 malformed input (``field`` names it),
403 below the engineer role, 404 no such case or branch, 409 ``branch_conflict`` (the
branch's or case's state refuses it), 413 a file over the attachment limit.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, request, send_file
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from app import storage
from app.accounts.auth import require_role
from app.api import bp
from app.api.common import case_or_404
from app.api.schemas.branches import (
    AttachmentOut,
    Branch,
    BranchAnswer,
    BranchDetail,
    BranchMap,
    BranchNode,
    Concluded,
    ForkBody,
    Forked,
    Note,
    NoteAdded,
    NoteBody,
    ReviveBody,
    Sibling,
    Switched,
    UpdateBranchBody,
)
from app.api.schemas.tasks import TaskState
from app.api.spec import operation, parse_body
from app.branches import service, summaries
from app.branches.models import Attachment, BranchNote
from app.branches.models import Branch as BranchRow
from app.branches.panel import prepare
from app.cases.models import Case
from app.extensions import db
from app.storage import StorageError, StoredFileMissing
from app.tasks import latest_task, task_state
from app.templating import as_utc

#: Types an attachment keeps when downloaded; anything else goes out as a plain download
#: (``application/octet-stream``), so no browser ever renders an uploaded page or SVG.
DOWNLOAD_TYPES = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "application/zip",
    "application/gzip", "application/x-gzip", "application/x-tar", "application/json",
}  # fmt: skip


#: The multipart form of a note with files (described in the OpenAPI beside the JSON body).
NOTE_FORM = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The note (Markdown)"},
        "files": {
            "type": "array",
            "items": {"type": "string", "contentMediaType": "application/octet-stream"},
            "description": "Files to attach (also accepted under the name file)",
        },
    },
}


@bp.get("/cases/<int:case_id>/branches")
@require_role("viewer")
@operation(responses={200: BranchMap}, tag="branches")
def list_branches(case_id: int) -> BranchMap:
    """The branch map: the ``tree`` (each branch with its ``children``), the ``branches`` in
    map order, and the ``active_branch`` with its notes and its siblings' summaries."""
    case = case_or_404(case_id)
    active = prepare(case)
    branches = service.branches_of(case, with_notes=True)
    return BranchMap(
        case_id=case.id,
        active_branch_id=active.id,
        branch_count=len(branches),
        branch_limit=service.branch_limit(),
        tree=_tree(service.map_tree(case, branches)[0], active.id),
        branches=[_branch(b, active.id) for b in branches],
        active_branch=_branch_detail(active, active.id),
    )


@bp.get("/cases/<int:case_id>/branches/<int:branch_id>")
@require_role("viewer")
@operation(responses={200: BranchDetail}, tag="branches")
def get_branch(case_id: int, branch_id: int) -> BranchDetail:
    """One branch with its ``notes`` and its ``siblings``' summaries (dead ends first)."""
    case = case_or_404(case_id)
    active = prepare(case)
    return _branch_detail(_get_branch(case, branch_id), active.id)


@bp.post("/cases/<int:case_id>/branches/fork")
@require_role("engineer")
@operation(body=ForkBody, responses={201: Forked}, tag="branches")
def fork_branch(case_id: int, body: ForkBody) -> tuple[Forked, int]:
    """Fork the active branch into 2 to 10 untried hypotheses.

    409 when the active branch is concluded, or the fork or the case would have too many
    branches.
    """
    case = case_or_404(case_id)
    options = [option.model_dump() for option in body.options]
    children = service.fork(case, body.reason, options, actor=current_user)
    db.session.commit()
    active_id = case.active_branch_id
    parent = children[0].parent
    return Forked(
        parent=_branch(parent, active_id), children=[_branch(c, active_id) for c in children]
    ), 201


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/switch")
@require_role("engineer")
@operation(responses={200: Switched}, tag="branches")
def switch_branch(case_id: int, branch_id: int) -> Switched:
    """Make the branch the active one; 409 for a dead end (revive it first) or the branch
    already active."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    previous = service.switch(case, branch, actor=current_user)
    db.session.commit()
    return Switched(branch=_branch(branch, case.active_branch_id), previous_branch_id=previous.id)


@bp.patch("/cases/<int:case_id>/branches/<int:branch_id>")
@require_role("engineer")
@operation(body=UpdateBranchBody, responses={200: Concluded}, tag="branches")
def update_branch(case_id: int, branch_id: int, body: UpdateBranchBody) -> Concluded:
    """Conclude a branch as a dead end or solved; after solving, ``offer_resolve`` says
    the case can now be resolved at ``resolve_url``."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    offer = service.set_status(branch, body.status, body.reason, actor=current_user)
    db.session.commit()
    return Concluded(
        branch=_branch(branch, case.active_branch_id),
        offer_resolve=offer,
        resolve_url=f"/api/cases/{case.id}/resolve" if offer else None,
    )


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/revive")
@require_role("engineer")
@operation(body=ReviveBody, responses={200: BranchAnswer}, tag="branches")
def revive_branch(case_id: int, branch_id: int, body: ReviveBody) -> BranchAnswer:
    """Revive a dead end with evidence from another branch of the case; 409 when the branch
    is not a dead end."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    source = _get_branch(case, body.evidence_from_branch_id)
    service.revive(branch, source, body.evidence, actor=current_user)
    db.session.commit()
    return BranchAnswer(branch=_branch(branch, case.active_branch_id))


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/notes")
@require_role("engineer")
@operation(
    body=NoteBody,
    responses={201: NoteAdded},
    tag="branches",
    parse_body_first=False,
    forms={"multipart/form-data": NOTE_FORM},
)
def add_branch_note(case_id: int, branch_id: int) -> tuple[NoteAdded, int]:
    """Add a note: JSON ``{"text"}``, or ``multipart/form-data`` with a ``text`` field and
    files in ``files`` (or ``file``); 413 for a file over the attachment limit."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    if request.mimetype == "multipart/form-data":
        text, files = _multipart_note()
    else:
        text, files = parse_body(NoteBody).text, []
    note = service.add_note(branch, text, files, actor=current_user)
    db.session.commit()
    return NoteAdded(note=_note(note), branch=_branch(branch, case.active_branch_id)), 201


def _multipart_note() -> tuple[str, list]:
    """The ``text`` field and the uploaded files of a multipart note."""
    try:
        text = request.form.get("text", "")
        uploads = request.files.getlist("files") + request.files.getlist("file")
    except RequestEntityTooLarge:
        request_limit = service.human_size(current_app.config["MAX_CONTENT_LENGTH"])
        file_limit = service.human_size(service.attachment_max_bytes())
        abort(413, description=(
            f"the request is over the {request_limit} limit for a whole request "
            f"(CASEHOOK_MAX_BODY_BYTES); each attachment may be up to {file_limit}"
        ))  # fmt: skip
    return text, [f for f in uploads if f and f.filename]


@bp.get("/attachments/<int:attachment_id>")
@require_role("viewer")
@operation(responses={200: None}, files={200: "*/*"}, tag="branches")
def download_attachment(attachment_id: int):
    """An attachment's bytes, always as a download (``Content-Disposition: attachment``,
    ``X-Content-Type-Options: nosniff``, a sandboxing CSP): never rendered inline.

    The bytes are streamed from the store through this route, also from object storage
    (not a redirect to a presigned URL): every download passes this access check, the
    headers above are ours, and the store need not be reachable from people's browsers.
    404 when the file is missing from the store, 503 when the store cannot be read."""
    attachment = db.get_or_404(
        Attachment, attachment_id, description=f"there is no attachment {attachment_id}"
    )
    try:
        stored = service.open_attachment(attachment)
    except StoredFileMissing:
        abort(404, description=f"the file of attachment {attachment_id} is missing from "
              f"storage ({storage.current().description})")  # fmt: skip
    except StorageError as exc:
        abort(503, description=f"the file of attachment {attachment_id} cannot be read "
              f"now: {exc}")  # fmt: skip
    if attachment.is_text:
        mimetype = "text/plain"  # the response adds "; charset=utf-8"
    elif attachment.content_type in DOWNLOAD_TYPES:
        mimetype = attachment.content_type
    else:
        mimetype = "application/octet-stream"
    response = send_file(
        stored.body,
        mimetype=mimetype,
        as_attachment=True,
        download_name=attachment.filename,
        max_age=0,
    )
    response.content_length = stored.size
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


# --- Shapes ---------------------------------------------------------------------------------


def _branch(branch: BranchRow, active_id: int | None) -> Branch:
    return Branch(**_branch_fields(branch, active_id))


def _branch_fields(branch: BranchRow, active_id: int | None) -> dict[str, Any]:
    return {
        "id": branch.id,
        "case_id": branch.case_id,
        "parent_id": branch.parent_id,
        "label": branch.label,
        "description": branch.description or "",
        "status": branch.status,
        "badge": branch.badge,
        "reason": branch.reason,
        "fork_reason": branch.fork_reason,
        "summary": branch.summary or "",
        "summary_task": TaskState.of(
            task_state(latest_task(summaries.KIND, summaries.subject(branch)))
        ),
        "position": branch.position,
        "is_root": branch.is_root,
        "active": branch.id == active_id,
        "revived": branch.revived,
        "revived_from_id": branch.revived_from_id,
        "revival_evidence": branch.revival_evidence,
        "revived_at": _iso(branch.revived_at),
        "note_count": len(branch.notes),
        "created_at": _iso(branch.created_at),
        "updated_at": _iso(branch.updated_at),
    }


def _branch_detail(branch: BranchRow, active_id: int | None) -> BranchDetail:
    return BranchDetail(
        **_branch_fields(branch, active_id),
        notes=[_note(note) for note in branch.notes],
        siblings=[Sibling(**s) for s in service.sibling_summaries(branch)],
    )


def _tree(node: service.Node, active_id: int | None) -> BranchNode:
    return BranchNode(**_branch_fields(node.branch, active_id),
                      children=[_tree(child, active_id) for child in node.children])  # fmt: skip


def _note(note: BranchNote) -> Note:
    return Note(
        id=note.id,
        branch_id=note.branch_id,
        text=note.text,
        author=note.author.email if note.author else None,
        created_at=_iso(note.created_at),
        attachments=[
            AttachmentOut(
                id=a.id,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                is_text=a.is_text,
                url=f"/api/attachments/{a.id}",
            )
            for a in note.attachments
        ],
    )


# --- Helpers --------------------------------------------------------------------------------


def _get_branch(case: Case, branch_id: int) -> BranchRow:
    branch = service.get_branch(case, branch_id)
    if branch is None:
        abort(404, description=f"case #{case.id} has no branch {branch_id}")
    return branch


def _iso(moment) -> str | None:
    return as_utc(moment).isoformat() if moment else None
