"""The branch map's rules (SPEC C4): fork, switch, conclude, revive, notes. Plain functions.

Every case starts with a root branch (created on first need by ``ensure_root``, so cases
opened before branches existed get one too); ``case.active_branch_id`` names the branch
being worked. Each action writes its case event (``branch.forked``, ``branch.switched``,
``branch.status_changed``, ``branch.revived``, ``note.added``) with the acting user, in the
caller's session: callers commit.

Refusals raise ``BranchError`` (the state does not allow it: 409) or ``BranchInputError``
(what was asked is malformed: 400; ``AttachmentTooLarge``: 413; ``AttachmentStoreError``: the
file store failed, 503), each with a sentence that says what to do instead.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, insert
from sqlalchemy.orm import selectinload

from app import clock, storage
from app.branches.models import BADGE_LABELS, Attachment, Branch, BranchNote
from app.cases.lifecycle import allowed_from
from app.cases.models import Case
from app.errors import DomainError
from app.events.record import record_event
from app.extensions import db
from app.writing.context import register_context

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: A fork splits a branch into this many hypotheses (and a branch has at most the maximum).
FORK_MIN, FORK_MAX = 2, 10
LABEL_MAX = 200
NOTE_MAX_CHARS = 50_000
FILES_PER_NOTE = 10
#: How much of a text attachment is kept in ``Attachment.text_content`` (bytes before decoding).
TEXT_KEEP_BYTES = 200 * 1024
ROOT_LABEL = "Root"
#: Order of sibling summaries: dead ends first, so nobody repeats them.
SIBLING_ORDER = {"dead_end": 0, "solved": 1, "active": 2, "untried": 3}
#: File types whose content is text (besides ``text/*``), for ``Attachment.text_content``.
TEXT_CONTENT_TYPES = (
    "application/json", "application/xml", "application/yaml", "application/x-yaml",
    "application/toml", "application/x-sh", "application/javascript", "application/x-ndjson",
    "application/sql", "image/svg+xml",
)  # fmt: skip
TEXT_SUFFIXES = {
    ".log", ".txt", ".text", ".out", ".err", ".trace", ".conf", ".cfg", ".ini", ".env",
    ".properties", ".yaml", ".yml", ".json", ".ndjson", ".toml", ".xml", ".csv", ".tsv", ".md",
    ".sh", ".py", ".js", ".ts", ".go", ".rb", ".java", ".rs", ".sql", ".diff", ".patch", ".har",
}  # fmt: skip


class BranchError(DomainError):
    """The case's or branch's state does not allow the action (409)."""

    status = status_code = 409
    error = "branch_conflict"


class BranchInputError(BranchError):
    """What was asked for is malformed or incomplete (400)."""

    status = status_code = 400
    error = "invalid_input"


class AttachmentTooLarge(BranchInputError):
    """A file is over ``ATTACHMENT_MAX_BYTES`` (413)."""

    status = status_code = 413
    error = "attachment_too_large"


class AttachmentStoreError(BranchError):
    """The file store (app/storage.py) could not keep the files (503)."""

    status = status_code = 503
    error = "attachment_storage_unavailable"


@dataclass
class Upload:
    """A file to attach: its name as uploaded, its bytes, its declared type."""

    filename: str
    data: bytes
    content_type: str = ""


# --- The tree -------------------------------------------------------------------------------


def root_of(case: Case) -> Branch | None:
    return db.session.scalar(
        db.select(Branch).where(Branch.case_id == case.id, Branch.parent_id.is_(None))
    )


def ensure_root(case: Case) -> tuple[Branch, bool]:
    """The case's root branch, created (``active``, and the active branch) when missing.

    Returns ``(root, created)``; a created root is flushed, not committed. Also points
    ``case.active_branch_id`` back at the root when it names no branch of this case.
    """
    # A case opened in this transaction has no branches yet: no query (nor its autoflush).
    from app.cases.service import opened_in_transaction

    root, created = (None if opened_in_transaction(case) else root_of(case)), False
    if root is None:
        if case.id is None:
            db.session.flush()  # a case not written yet: its id first
        now = clock.now()
        values = {
            "case_id": case.id, "label": ROOT_LABEL, "status": "active", "position": 0,
            "description": "", "summary": "", "created_at": now, "updated_at": now,
        }  # fmt: skip
        # INSERT … RETURNING for its id: a flush would write all that is pending with it.
        root = db.session.scalars(
            insert(Branch).returning(Branch), [values], execution_options={"autoflush": False}
        ).one()
        created = True
    if created or _branch_of_case(case, case.active_branch_id) is None:
        case.active_branch_id = root.id
    return root, created


def active_branch(case: Case) -> Branch:
    """The branch being worked (the root until someone switches), creating the root if need be."""
    # A case's branches all hang from its root, so naming one proves the root is there.
    branch = _branch_of_case(case, case.active_branch_id)
    return branch if branch is not None else ensure_root(case)[0]


def branches_of(case: Case, *, with_notes: bool = False) -> list[Branch]:
    """Every branch of ``case`` in map order: depth first, siblings by position.

    ``with_notes`` loads every branch's notes, their authors and attachments up front (one
    query each rather than one per branch), for whoever reads them all.
    """
    query = db.select(Branch).where(Branch.case_id == case.id)
    if with_notes:
        notes = selectinload(Branch.notes)
        query = query.options(
            notes.selectinload(BranchNote.attachments), notes.selectinload(BranchNote.author)
        )
    branches = db.session.scalars(query.order_by(Branch.position, Branch.id)).all()
    children: dict[int | None, list[Branch]] = {}
    for branch in branches:
        children.setdefault(branch.parent_id, []).append(branch)
    ordered: list[Branch] = []

    def walk(parent_id: int | None) -> None:
        for branch in children.get(parent_id, []):
            ordered.append(branch)
            walk(branch.id)

    walk(None)
    return ordered


@dataclass
class Node:
    """A branch and its children, for drawing the map (``map_tree``)."""

    branch: Branch
    children: list[Node]


def map_tree(case: Case, branches: list[Branch] | None = None) -> list[Node]:
    """The case's branches as a tree (a one-element list: the root), siblings by position.

    ``branches``: ``branches_of(case)`` when the caller has it already.
    """
    nodes = {b.id: Node(b, []) for b in (branches if branches is not None else branches_of(case))}
    roots: list[Node] = []
    for node in nodes.values():  # branches_of is depth first, so parents come first
        parent = nodes.get(node.branch.parent_id) if node.branch.parent_id else None
        (parent.children if parent else roots).append(node)
    return roots


def sibling_summaries(branch: Branch) -> list[dict]:
    """What the other hypotheses of the same fork found: ``[{"id", "label", "status",
    "badge", "reason", "summary"}]``, dead ends first (then solved, active, untried; by
    position within each). The root has no siblings."""
    if branch.parent_id is None:
        return []
    siblings = db.session.scalars(
        db.select(Branch).where(Branch.parent_id == branch.parent_id, Branch.id != branch.id)
    ).all()
    siblings = sorted(siblings, key=lambda b: (SIBLING_ORDER.get(b.status, 9), b.position, b.id))
    return [
        {"id": s.id, "label": s.label, "status": s.status, "badge": s.badge, "reason": s.reason,
         "summary": s.summary or ""}
        for s in siblings
    ]  # fmt: skip


# --- Actions --------------------------------------------------------------------------------


def fork(case: Case, reason: str, options: Sequence[dict], actor: Any = None) -> list[Branch]:
    """Fork the active branch into 2 to 10 ``untried`` hypotheses; returns them (flushed).

    ``options``: ``[{"label": str, "description": str}]``; labels non-empty, ≤ 200
    characters, distinct (ignoring case) among themselves and the branch's other children.
    ``reason`` (why fork here) is required. Refused (409) when the active branch is a dead end
    or solved, when it would get more than 10 children, or when the case would exceed
    ``BRANCH_LIMIT`` branches (the root counts). Writes ``branch.forked``.
    """
    _check_workable(case)
    parent = active_branch(case)
    reason = _required(reason, "reason", "say why you fork here: what the hypotheses decide")
    if not isinstance(options, list | tuple):
        raise BranchInputError("options must be a list of {label, description} objects")
    if not FORK_MIN <= len(options) <= FORK_MAX:
        raise BranchInputError(
            f"a fork splits a branch into {FORK_MIN} to {FORK_MAX} hypotheses; {len(options)} given"
        )
    cleaned: list[tuple[str, str]] = []
    for number, option in enumerate(options, start=1):
        if not isinstance(option, dict):
            raise BranchInputError(
                f"hypothesis {number} must be an object with a label and a description"
            )
        label = _text(option.get("label"), f"hypothesis {number}'s label").strip()
        description = _text(option.get("description"), f"hypothesis {number}'s description").strip()
        if not label:
            raise BranchInputError(f"hypothesis {number} has no label; give each one a label")
        if len(label) > LABEL_MAX:
            raise BranchInputError(
                f"hypothesis {number}'s label is {len(label)} characters; at most {LABEL_MAX}"
            )
        cleaned.append((label, description))
    seen: dict[str, str] = {}
    for label, _ in cleaned:
        if label.casefold() in seen:
            raise BranchInputError(f"two hypotheses are labelled {label!r}; labels must differ")
        seen[label.casefold()] = label
    if parent.status in ("dead_end", "solved"):
        advice = (
            "revive it first, with evidence from another branch"
            if parent.status == "dead_end"
            else "switch to another branch to fork there"
        )
        raise BranchError(
            f"the active branch {parent.label!r} is {BADGE_LABELS[parent.status]}; {advice}"
        )
    existing = list(parent.children)
    for child in existing:
        if child.label.casefold() in seen:
            raise BranchInputError(
                f"{parent.label!r} already has a hypothesis labelled {child.label!r}; "
                "choose another label"
            )
    if len(existing) + len(cleaned) > FORK_MAX:
        raise BranchError(
            f"{parent.label!r} already has {len(existing)} hypotheses and a branch has at most "
            f"{FORK_MAX}; fork into at most {max(0, FORK_MAX - len(existing))} more, or fork "
            "one of its hypotheses instead"
        )
    limit = branch_limit()
    count = db.session.scalar(db.select(func.count(Branch.id)).where(Branch.case_id == case.id))
    if count + len(cleaned) > limit:
        room = limit - count
        advice = (
            f"fork into at most {room} hypotheses"
            if room >= FORK_MIN
            else "there is no room for another fork"
        )
        raise BranchError(
            f"a case can have at most {limit} branches (the BRANCH_LIMIT setting) and case "
            f"#{case.id} has {count}; a fork of {len(cleaned)} would make "
            f"{count + len(cleaned)}: {advice}"
        )
    now = clock.now()
    start = max((child.position for child in existing), default=0)
    children = []
    for offset, (label, description) in enumerate(cleaned, start=1):
        child = Branch(case_id=case.id, label=label, description=description, status="untried",
                       fork_reason=reason, position=start + offset, summary="",
                       created_at=now, updated_at=now)  # fmt: skip
        parent.children.append(child)
        children.append(child)
    db.session.flush()
    parent.updated_at = case.updated_at = now
    labels = ", ".join(label for label, _ in cleaned)
    _record(
        case,
        parent,
        "branch.forked",
        actor,
        {
            "reason": reason,
            "children": [{"id": c.id, "label": c.label} for c in children],
            "summary": f"Forked {parent.label!r} into {len(children)} hypotheses: {labels}",
        },
    )
    return children


def switch(case: Case, branch: Branch, actor: Any = None) -> Branch:
    """Make ``branch`` the active branch (an ``untried`` one becomes ``active``); returns the
    branch that was active. Refused (409) for a dead end (revive it first) and for the branch
    already active. Writes ``branch.switched``."""
    _check_workable(case)
    _check_belongs(case, branch)
    previous = active_branch(case)
    if branch.id == previous.id:
        raise BranchError(f"{branch.label!r} is already the active branch")
    if branch.status == "dead_end":
        raise BranchError(
            f"{branch.label!r} is a dead end ({branch.reason}); revive it first, with evidence "
            "from another branch, to work on it again"
        )
    now = clock.now()
    if branch.status == "untried":
        branch.status = "active"
    branch.updated_at = case.updated_at = now
    case.active_branch_id = branch.id
    _record(
        case,
        branch,
        "branch.switched",
        actor,
        {
            "from_branch_id": previous.id,
            "from": previous.label,
            "summary": f"Switched from {previous.label!r} to {branch.label!r}",
        },
    )
    return previous


def set_status(branch: Branch, status: str, reason: str, actor: Any = None) -> bool:
    """Conclude ``branch``: ``dead_end`` or ``solved``, with a reason (required).

    At most one branch of a case is solved; a solved branch may later be marked a dead end
    (the fix did not hold), a dead end must be revived before it can be solved. Returns True
    when the case can now be resolved (the branch is solved and the case's status allows
    ``resolved``): the console then offers to resolve it. Writes ``branch.status_changed``.
    """
    case = branch.case
    _check_workable(case)
    if status not in ("dead_end", "solved"):
        raise BranchInputError(
            f"status must be dead_end or solved, not {status!r}; a dead end comes back with "
            "revive, an untried branch becomes active by switching to it"
        )
    reason = _required(
        reason,
        "reason",
        "say why it is a dead end" if status == "dead_end" else "say what solved it",
    )
    if branch.status == status:
        raise BranchError(f"{branch.label!r} is already {BADGE_LABELS[status]}")
    if branch.status == "dead_end":
        raise BranchError(
            f"{branch.label!r} is a dead end; revive it first, with evidence from another "
            "branch, then mark it solved"
        )
    if status == "solved":
        solved = db.session.scalar(
            db.select(Branch).where(
                Branch.case_id == case.id, Branch.status == "solved", Branch.id != branch.id
            )
        )
        if solved is not None:
            raise BranchError(
                f"{solved.label!r} is already solved and a case has at most one solved branch; "
                f"mark {solved.label!r} a dead end first if it did not hold"
            )
    previous, now = branch.status, clock.now()
    branch.status, branch.reason = status, reason
    branch.updated_at = case.updated_at = now
    refresh_summary(branch)
    verdict = "a dead end" if status == "dead_end" else "solved"
    _record(
        case,
        branch,
        "branch.status_changed",
        actor,
        {
            "from": previous,
            "to": status,
            "reason": reason,
            "summary": f"Marked {branch.label!r} {verdict}",
        },
    )
    return status == "solved" and "resolved" in allowed_from(case.status)


def revive(
    branch: Branch, evidence_from_branch: Branch | None, evidence: str, actor: Any = None
) -> Branch:
    """Bring a dead end back (``active``, badge ``revived``) because another branch showed
    something that reopens it. ``evidence`` (what was found) is required and must come from
    another branch of the same case. Writes ``branch.revived``."""
    case = branch.case
    _check_workable(case)
    if evidence_from_branch is None:
        raise BranchInputError("say which branch the evidence comes from (evidence_from_branch_id)")
    if evidence_from_branch.case_id != case.id:
        raise BranchInputError(
            f"branch {evidence_from_branch.id} belongs to another case; the evidence must come "
            f"from a branch of case #{case.id}"
        )
    if evidence_from_branch.id == branch.id:
        raise BranchInputError("the evidence must come from another branch, not the dead end")
    evidence = _required(evidence, "evidence", "say what was found that reopens this branch")
    if branch.status != "dead_end":
        raise BranchError(
            f"only a dead end can be revived; {branch.label!r} is {BADGE_LABELS[branch.badge]}"
        )
    now = clock.now()
    dead_end_reason = branch.reason
    branch.status, branch.reason = "active", None
    branch.revived_from_id, branch.revival_evidence, branch.revived_at = (
        evidence_from_branch.id, evidence, now)  # fmt: skip
    branch.revived_from = evidence_from_branch
    branch.updated_at = case.updated_at = now
    refresh_summary(branch)
    _record(
        case,
        branch,
        "branch.revived",
        actor,
        {
            "evidence_from_branch_id": evidence_from_branch.id,
            "evidence_from": evidence_from_branch.label,
            "evidence": evidence,
            "dead_end_reason": dead_end_reason,
            "summary": f"Revived {branch.label!r} with evidence from "
            f"{evidence_from_branch.label!r}: {_excerpt(evidence)}",
        },
    )
    return branch


def add_note(branch: Branch, text: str, files: Iterable[Any] = (), actor: Any = None) -> BranchNote:
    """Add a note (Markdown ``text``, and/or ``files``) to ``branch``; refreshes its summary.

    ``files``: ``Upload``s or werkzeug ``FileStorage``s, at most 10, each at most
    ``ATTACHMENT_MAX_BYTES`` (``AttachmentTooLarge``, 413). Files go to the store
    (app/storage.py) as ``<case id>/<random>`` before the case row is locked: the store may be
    across the network, and nobody's action on the case should wait for it. A note refused
    after that, or a commit that fails, leaves an unreferenced file behind, never a note
    without its file. ``AttachmentStoreError`` (503) when the store fails. An untried branch
    with a note becomes ``active``. Writes ``note.added``.
    """
    case = branch.case
    _check_open(case)
    text = _text(text, "the note's text").strip()
    files = [f for f in files or () if f is not None and (_filename(f) or _has_data(f))]
    if not text and not files:
        raise BranchInputError("a note needs text, a file, or both")
    if len(text) > NOTE_MAX_CHARS:
        raise BranchInputError(
            f"the note is {len(text)} characters; at most {NOTE_MAX_CHARS}: attach long "
            "output as a file instead"
        )
    if len(files) > FILES_PER_NOTE:
        raise BranchInputError(f"at most {FILES_PER_NOTE} files per note; {len(files)} given")
    uploads = [_read_upload(f) for f in files]
    keys = [_store(case, upload) for upload in uploads]
    _check_workable(case)
    now = clock.now()
    note = BranchNote(case_id=case.id, author_id=getattr(actor, "id", None), text=text,
                      created_at=now)  # fmt: skip
    branch.notes.append(note)
    for upload, key in zip(uploads, keys, strict=True):
        note.attachments.append(_attachment(case, upload, key, now))
    db.session.flush()
    if branch.status == "untried":
        branch.status = "active"
    branch.updated_at = case.updated_at = now
    refresh_summary(branch)
    names = [a.filename for a in note.attachments]
    _record(
        case,
        branch,
        "note.added",
        actor,
        {
            "note_id": note.id,
            "attachments": names,
            "summary": f"Note on {branch.label!r}: "
            + (_excerpt(text) if text else "attached " + ", ".join(names)),
        },
    )
    return note


def refresh_summary(branch: Branch) -> None:
    """Ask for ``branch.summary`` to be rewritten from its notes and verdict, by a task
    after the caller commits (``app/branches/summaries.py``): the writer may be slow and
    this transaction holds the case row. The previous summary stays until then."""
    from app.branches.summaries import request_summary

    request_summary(branch)


# --- Plain data for writers, the API and other features -------------------------------------


def branch_dict(branch: Branch) -> dict:
    """A branch as writers take it (see ``app.writing``): ``{"id", "label",
    "description", "status", "reason", "parent_id", "notes": [{"text", "author",
    "created_at", "attachments": [{"filename", "text"}]}]}`` plus ``fork_reason``,
    ``summary``, ``badge``, ``revived``, ``revived_from_id``, ``revival_evidence``,
    ``is_root``. Times are ISO 8601 strings; ``text`` of a binary attachment is None."""
    return {
        "id": branch.id,
        "label": branch.label,
        "description": branch.description or "",
        "status": branch.status,
        "reason": branch.reason,
        "parent_id": branch.parent_id,
        "fork_reason": branch.fork_reason,
        "summary": branch.summary or "",
        "badge": branch.badge,
        "revived": branch.revived,
        "revived_from_id": branch.revived_from_id,
        "revival_evidence": branch.revival_evidence,
        "is_root": branch.is_root,
        "notes": [
            {
                "text": note.text,
                "author": note.author.email if note.author else None,
                "created_at": _iso(note.created_at),
                "attachments": [
                    {"filename": a.filename, "text": a.text_content} for a in note.attachments
                ],
            }
            for note in branch.notes
        ],
    }


def branches_for_context(case: Case) -> list[dict]:
    """Every branch of ``case`` as ``branch_dict``s in map order (root first, depth first),
    each with ``"active": bool`` (the case's active branch). Reads only: a case nobody has
    opened since branches existed has no root yet and gives ``[]``."""
    return [
        {**branch_dict(branch), "active": branch.id == case.active_branch_id}
        for branch in branches_of(case, with_notes=True)
    ]


@register_context
def _writer_context(case: Case) -> dict:
    """The branch map's part of every writer context (``app.writing.context``)."""
    return {"branches": branches_for_context(case), "active_branch_id": case.active_branch_id}


def branch_limit() -> int:
    return int(current_app.config.get("BRANCH_LIMIT", 25))


def attachment_max_bytes() -> int:
    return int(current_app.config.get("ATTACHMENT_MAX_BYTES", 10 * MiB))


def open_attachment(attachment: Attachment) -> storage.StoredFile:
    """``attachment``'s bytes, open for reading from the store; ``storage.StoredFileMissing``
    or ``storage.StorageUnavailable`` (messages that name the store) when they cannot be."""
    if not attachment.storage_path:
        raise storage.StoredFileMissing(f"attachment {attachment.id} has no stored file")
    return storage.current().open(attachment.storage_path)


def get_branch(case: Case, branch_id: int) -> Branch | None:
    """Branch ``branch_id`` if it belongs to ``case``, else None."""
    return _branch_of_case(case, branch_id)


# --- Helpers --------------------------------------------------------------------------------


def _branch_of_case(case: Case, branch_id: int | None) -> Branch | None:
    if branch_id is None:
        return None
    branch = db.session.get(Branch, branch_id)
    return branch if branch is not None and branch.case_id == case.id else None


def _check_workable(case: Case) -> None:
    """Refuse work on a resolved or closed case; hold the case row until the caller commits,
    so two people's branch actions on one case (a second solved branch, a fork over the
    limit) happen one after the other (Postgres; SQLite serialises writers anyway)."""
    db.session.execute(db.select(Case.id).where(Case.id == case.id).with_for_update())
    _check_open(case)


def _check_open(case: Case) -> None:
    if case.status in ("resolved", "closed"):
        raise BranchError(f"case #{case.id} is {case.status}; reopen it to work on its branches")


def _check_belongs(case: Case, branch: Branch) -> None:
    if branch.case_id != case.id:
        raise BranchInputError(f"branch {branch.id} belongs to another case than #{case.id}")


def _required(value: Any, name: str, advice: str) -> str:
    value = _text(value, name).strip()
    if not value:
        raise BranchInputError(f"{name} is required: {advice}")
    if len(value) > NOTE_MAX_CHARS:
        raise BranchInputError(f"{name} is {len(value)} characters; at most {NOTE_MAX_CHARS}")
    return value


def _text(value: Any, name: str = "the value") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BranchInputError(f"{name} must be text, not {type(value).__name__}")
    return value


def _excerpt(text: str, length: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"


def _actor(actor: Any) -> str | None:
    return getattr(actor, "email", None) or (actor if isinstance(actor, str) else None)


def _record(case: Case, branch: Branch, kind: str, actor: Any, payload: dict) -> None:
    """Write the ``kind`` event on ``case``; its payload names ``branch`` first."""
    record_event(
        case,
        kind,
        actor=_actor(actor),
        payload={"branch_id": branch.id, "branch": branch.label, **payload},
    )


def _iso(moment: Any) -> str | None:
    from app.templating import as_utc

    return as_utc(moment).isoformat() if moment else None


def _filename(upload: Any) -> str:
    return getattr(upload, "filename", "") or ""


def _has_data(upload: Any) -> bool:
    return bool(getattr(upload, "data", b""))


def _read_upload(upload: Any) -> Upload:
    """An ``Upload`` from an ``Upload`` or a ``FileStorage``, reading at most the limit + 1
    bytes so an oversized file is refused without holding all of it."""
    limit = attachment_max_bytes()
    name = clean_filename(_filename(upload))
    if isinstance(upload, Upload):
        data = upload.data
        content_type = upload.content_type
    else:
        data = upload.stream.read(limit + 1)
        content_type = getattr(upload, "mimetype", "") or ""
    if len(data) > limit:
        raise AttachmentTooLarge(
            f"{name} is over the {human_size(limit)} limit for attachments "
            "(the ATTACHMENT_MAX_BYTES setting); attach an excerpt or compress it"
        )
    return Upload(name, data, content_type)


def clean_filename(name: str) -> str:
    """The last path component of an uploaded file's name, printable, ≤ 255 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in ("", ".", ".."):
        return "attachment"
    if len(name) > 255:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: 250 - len(suffix)] + dot + suffix) if dot and len(suffix) < 16 else name
        name = name[:255]
    return name


def _store(case: Case, upload: Upload) -> str:
    """Put ``upload``'s bytes in the store; returns their key. The random part keeps two
    databases sharing one store (tests, a restored backup) from writing over each other."""
    key = f"{case.id}/{secrets.token_hex(16)}"
    try:
        storage.current().put(key, upload.data, upload.content_type)
    except storage.StorageError as exc:
        log.warning("attachment not stored: %s", exc)
        raise AttachmentStoreError(
            f"{upload.filename} could not be stored: {exc}; the note was not saved"
        ) from exc
    return key


def _attachment(case: Case, upload: Upload, key: str, now: Any) -> Attachment:
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if not content_type or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    text = None
    if _looks_like_text(upload.filename, content_type, upload.data):
        text = upload.data[:TEXT_KEEP_BYTES].decode("utf-8", errors="replace")
        if len(upload.data) > TEXT_KEEP_BYTES:
            text += f"\n[… cut: {human_size(len(upload.data))} in all, the first {human_size(TEXT_KEEP_BYTES)} kept]"  # noqa: E501
    return Attachment(case_id=case.id, filename=upload.filename, content_type=content_type[:200],
                      size=len(upload.data), text_content=text, storage_path=key,
                      created_at=now)  # fmt: skip


def _looks_like_text(filename: str, content_type: str, data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return False
    if content_type.startswith("image/") and content_type != "image/svg+xml":
        return False
    if content_type.startswith("text/") or content_type in TEXT_CONTENT_TYPES:
        return True
    if Path(filename).suffix.lower() in TEXT_SUFFIXES:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 8 KiB mark is still text.
        return len(head) == 8192 and exc.start >= len(head) - 3
    return True


def human_size(size: int) -> str:
    """Bytes for people: "512 bytes", "14 KiB", "2.5 MiB"."""
    if size >= MiB:
        return f"{size / MiB:.1f} MiB".replace(".0 ", " ")
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} bytes"
