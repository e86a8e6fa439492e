"""The branch map (``/api/cases/<id>/branches``), its actions, and attachments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.api.schemas import Body, Id, Out, Timestamp
from app.api.schemas.tasks import TaskState
from app.branches.models import BRANCH_STATUSES

BranchStatus = Literal[BRANCH_STATUSES]  # type: ignore[valid-type]


# -- requests --------------------------------------------------------------------------------


class ForkOption(Body):
    label: str = Field(description="The hypothesis: ≤ 200 characters, distinct ignoring case")
    description: str = ""


class ForkBody(Body):
    reason: str = Field(description="Why fork here")
    options: list[ForkOption] = Field(description="2 to 10 hypotheses")


class UpdateBranchBody(Body):
    status: Literal["dead_end", "solved"]
    reason: str | None = Field(None, description="Why it is a dead end / what solved it")


class ReviveBody(Body):
    evidence_from_branch_id: Id = Field(description="The branch the evidence comes from")
    evidence: str | None = None


class NoteBody(Body):
    """A note as JSON; as ``multipart/form-data`` it is a ``text`` field and files in
    ``files`` (or ``file``)."""

    text: str


# -- answers ---------------------------------------------------------------------------------


class Sibling(Out):
    id: int
    label: str
    status: BranchStatus
    badge: str
    reason: str | None
    summary: str


class AttachmentOut(Out):
    id: int
    filename: str
    content_type: str
    size: int = Field(description="Bytes")
    is_text: bool
    url: str = Field(description="Where to download it (always as an attachment)")


class Note(Out):
    id: int
    branch_id: int
    text: str
    author: str | None = Field(description="The author's email")
    created_at: Timestamp | None
    attachments: list[AttachmentOut]


class Branch(Out):
    """A hypothesis on the map. ``badge`` is what the map shows (``revived`` for a revived
    dead end); ``summary_task`` is the task writing ``summary`` (which stays the previous
    one until it succeeds), null when none was ever asked for."""

    id: int
    case_id: int
    parent_id: int | None
    label: str
    description: str
    status: BranchStatus
    badge: str
    reason: str | None
    fork_reason: str | None
    summary: str
    summary_task: TaskState | None
    position: int
    is_root: bool
    active: bool
    revived: bool
    revived_from_id: int | None
    revival_evidence: str | None
    revived_at: Timestamp | None
    note_count: int
    created_at: Timestamp | None
    updated_at: Timestamp | None


class BranchDetail(Branch):
    notes: list[Note]
    siblings: list[Sibling] = Field(description="The same fork's other hypotheses, dead ends first")


class BranchNode(Branch):
    children: list[BranchNode]


class BranchMap(Out):
    case_id: int
    active_branch_id: int
    branch_count: int
    branch_limit: int
    tree: BranchNode
    branches: list[Branch] = Field(description="In map order")
    active_branch: BranchDetail


class Forked(Out):
    parent: Branch
    children: list[Branch]


class Switched(Out):
    branch: Branch
    previous_branch_id: int


class Concluded(Out):
    branch: Branch
    offer_resolve: bool = Field(description="The case can now be resolved at resolve_url")
    resolve_url: str | None


class BranchAnswer(Out):
    branch: Branch


class NoteAdded(Out):
    note: Note
    branch: Branch
