"""``/api/cases/<id>/branches``: the branch map as JSON, its actions, and attachment downloads.

Errors are ``{"error", "detail"}``: 400 malformed input, 403 below the engineer role, 404
no such case or branch, 409 the branch's or case's state refuses it, 413 a file over the
attachment limit.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, jsonify, request, send_file
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from app import storage
from app.accounts.auth import require_role
from app.api import bp
from app.api.common import case_or_404, json_body
from app.branches import service, summaries
from app.branches.models import Attachment, Branch, BranchNote
from app.branches.panel import prepare
from app.branches.service import BranchError
from app.cases.models import Case
from app.extensions import db
from app.inputs import as_id
from app.storage import StorageError, StoredFileMissing
from app.tasks import latest_task, task_state
from app.templating import as_utc

#: Types an attachment keeps when downloaded; anything else goes out as a plain download
#: (``application/octet-stream``), so no browser ever renders an uploaded page or SVG.
DOWNLOAD_TYPES = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "application/zip",
    "application/gzip", "application/x-gzip", "application/x-tar", "application/json",
}  # fmt: skip


@bp.get("/cases/<int:case_id>/branches")
@require_role("viewer")
def list_branches(case_id: int):
    """The branch map: ``{"case_id", "active_branch_id", "branch_count", "branch_limit",
    "tree": branch-with-"children", "branches": [branch...] (map order),
    "active_branch": branch-with-"notes"-and-"siblings"}``. See ``_branch`` for a branch."""
    case = case_or_404(case_id)
    active = prepare(case)
    branches = service.branches_of(case, with_notes=True)
    return jsonify(
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
def get_branch(case_id: int, branch_id: int):
    """One branch with its ``notes`` and its ``siblings``' summaries (dead ends first)."""
    case = case_or_404(case_id)
    active = prepare(case)
    return jsonify(_branch_detail(_get_branch(case, branch_id), active.id))


@bp.post("/cases/<int:case_id>/branches/fork")
@require_role("engineer")
def fork_branch(case_id: int):
    """Fork the active branch. Body ``{"reason": str, "options": [{"label", "description"}]}``
    (2 to 10 options). 201 ``{"parent": branch, "children": [branch...]}``."""
    case = case_or_404(case_id)
    body = json_body()
    children = _do(lambda: service.fork(case, body.get("reason"), body.get("options"),
                                        actor=current_user))  # fmt: skip
    active_id = case.active_branch_id
    parent = children[0].parent
    return jsonify(
        parent=_branch(parent, active_id), children=[_branch(c, active_id) for c in children]
    ), 201


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/switch")
@require_role("engineer")
def switch_branch(case_id: int, branch_id: int):
    """Make the branch the active one. 200 ``{"branch": branch, "previous_branch_id"}``;
    409 for a dead end (revive it first) or the branch already active."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    previous = _do(lambda: service.switch(case, branch, actor=current_user))
    return jsonify(branch=_branch(branch, case.active_branch_id), previous_branch_id=previous.id)


@bp.patch("/cases/<int:case_id>/branches/<int:branch_id>")
@require_role("engineer")
def update_branch(case_id: int, branch_id: int):
    """Conclude a branch. Body ``{"status": "dead_end"|"solved", "reason": str}``.
    200 ``{"branch": branch, "offer_resolve": bool, "resolve_url": str|null}``: after
    solving, ``offer_resolve`` says the case can now be resolved at ``resolve_url``."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    body = json_body()
    status = body.get("status")
    if not isinstance(status, str):
        abort(400, description='send {"status": "dead_end"|"solved", "reason": "..."}')
    offer = _do(lambda: service.set_status(branch, status, body.get("reason"),
                                           actor=current_user))  # fmt: skip
    return jsonify(
        branch=_branch(branch, case.active_branch_id),
        offer_resolve=offer,
        resolve_url=f"/api/cases/{case.id}/resolve" if offer else None,
    )


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/revive")
@require_role("engineer")
def revive_branch(case_id: int, branch_id: int):
    """Revive a dead end. Body ``{"evidence_from_branch_id": int, "evidence": str}``.
    200 ``{"branch": branch}``; 409 when the branch is not a dead end."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    body = json_body()
    source_id = body.get("evidence_from_branch_id")
    if source_id is None:
        abort(400, description="evidence_from_branch_id is required: the branch the "
              "evidence comes from")  # fmt: skip
    if not isinstance(source_id, int) or as_id(source_id) is None:  # as_id: no bools, no 10**20
        abort(400, description="evidence_from_branch_id must be a branch id (an integer)")
    source = _get_branch(case, source_id)
    _do(lambda: service.revive(branch, source, body.get("evidence"), actor=current_user))
    return jsonify(branch=_branch(branch, case.active_branch_id))


@bp.post("/cases/<int:case_id>/branches/<int:branch_id>/notes")
@require_role("engineer")
def add_branch_note(case_id: int, branch_id: int):
    """Add a note: JSON ``{"text": str}``, or multipart with a ``text`` field and files in
    ``files`` (or ``file``). 201 ``{"note": note, "branch": branch}``; 413 for a file over
    the attachment limit."""
    case = case_or_404(case_id)
    branch = _get_branch(case, branch_id)
    if request.mimetype == "multipart/form-data":
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
        files = [f for f in uploads if f and f.filename]
    else:
        text, files = json_body().get("text"), []
    note = _do(lambda: service.add_note(branch, text, files, actor=current_user))
    return jsonify(note=_note(note), branch=_branch(branch, case.active_branch_id)), 201


@bp.get("/attachments/<int:attachment_id>")
@require_role("viewer")
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


def _branch(branch: Branch, active_id: int | None) -> dict[str, Any]:
    """``{"id", "case_id", "parent_id", "label", "description", "status", "badge", "reason",
    "fork_reason", "summary", "position", "is_root", "active", "revived",
    "revived_from_id", "revival_evidence", "revived_at", "note_count", "created_at",
    "updated_at", "summary_task"}``; ``badge`` is what the map shows (``revived`` for a
    revived dead end); ``summary_task`` is ``{"id", "status", "attempts", "last_error"}`` of
    the task writing the summary (``summary`` is the previous one until it succeeds), or
    None when none was ever asked for."""
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
        "summary_task": task_state(latest_task(summaries.KIND, summaries.subject(branch))),
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


def _branch_detail(branch: Branch, active_id: int | None) -> dict[str, Any]:
    return {
        **_branch(branch, active_id),
        "notes": [_note(note) for note in branch.notes],
        "siblings": service.sibling_summaries(branch),
    }


def _tree(node: service.Node, active_id: int | None) -> dict[str, Any]:
    return {**_branch(node.branch, active_id),
            "children": [_tree(child, active_id) for child in node.children]}  # fmt: skip


def _note(note: BranchNote) -> dict[str, Any]:
    """``{"id", "branch_id", "text", "author", "created_at", "attachments": [{"id",
    "filename", "content_type", "size", "is_text", "url"}]}`` (size in bytes)."""
    return {
        "id": note.id,
        "branch_id": note.branch_id,
        "text": note.text,
        "author": note.author.email if note.author else None,
        "created_at": _iso(note.created_at),
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "is_text": a.is_text,
                "url": f"/api/attachments/{a.id}",
            }
            for a in note.attachments
        ],
    }


# --- Helpers --------------------------------------------------------------------------------


def _do(action):
    """Run a domain action and commit; refusals become ``{"error", "detail"}`` answers."""
    try:
        result = action()
        db.session.commit()
    except BranchError as refusal:
        db.session.rollback()
        abort(refusal.status_code, description=str(refusal))
    return result


def _get_branch(case: Case, branch_id: int) -> Branch:
    branch = service.get_branch(case, branch_id)
    if branch is None:
        abort(404, description=f"case #{case.id} has no branch {branch_id}")
    return branch


def _iso(moment) -> str | None:
    return as_utc(moment).isoformat() if moment else None
