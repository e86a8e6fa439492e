"""Branches (hypotheses on a case, a tree from its root), notes on them, and attached files."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db

#: ``untried``: forked, never worked; ``active``: being (or was) worked, no verdict yet;
#: ``dead_end`` / ``solved``: concluded, with a reason. A revived dead end is ``active`` again
#: with ``revived_from_id`` set (the "revived" badge).
BRANCH_STATUSES = ("untried", "active", "dead_end", "solved")
#: What the map's badges say, per ``Branch.badge``.
BADGE_LABELS = {
    "untried": "untried",
    "active": "active",
    "dead_end": "dead end",
    "solved": "solved",
    "revived": "revived",
}


class Branch(db.Model):
    """One hypothesis on a case. ``parent_id`` None is the case's root (one per case)."""

    __tablename__ = "branches"
    __table_args__ = (
        CheckConstraint("status IN ('untried', 'active', 'dead_end', 'solved')", name="status"),
        # At most one root per case, so two first looks at a case cannot both create one.
        Index(
            "uq_branches_case_root",
            "case_id",
            unique=True,
            sqlite_where=text("parent_id IS NULL"),
            postgresql_where=text("parent_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("branches.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="untried")
    #: Why it is a dead end or solved (required for both); None otherwise.
    reason: Mapped[str | None] = mapped_column(Text)
    #: Why the fork that created this branch was made (the same on all its siblings).
    fork_reason: Mapped[str | None] = mapped_column(Text)
    #: What was tried and what it concluded, written by the writer from the notes.
    summary: Mapped[str] = mapped_column(Text, default="")
    #: Order among siblings (1-based; the root is 0).
    position: Mapped[int] = mapped_column(default=0)
    revived_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("branches.id", ondelete="SET NULL")
    )
    revival_evidence: Mapped[str | None] = mapped_column(Text)
    revived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    case = relationship("Case")
    parent: Mapped[Branch | None] = relationship(
        remote_side="Branch.id", foreign_keys=[parent_id], back_populates="children"
    )
    children: Mapped[list[Branch]] = relationship(
        foreign_keys=[parent_id],
        back_populates="parent",
        order_by="Branch.position, Branch.id",
        passive_deletes=True,
    )
    revived_from: Mapped[Branch | None] = relationship(
        remote_side="Branch.id", foreign_keys=[revived_from_id]
    )
    notes: Mapped[list[BranchNote]] = relationship(
        back_populates="branch",
        order_by="BranchNote.created_at, BranchNote.id",
        passive_deletes=True,
    )

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def revived(self) -> bool:
        return self.revived_from_id is not None or self.revived_at is not None

    @property
    def badge(self) -> str:
        """The map's badge: ``untried``, ``active``, ``dead_end``, ``solved`` or ``revived``
        (a revived dead end still open)."""
        if self.status in ("untried", "active") and self.revived:
            return "revived"
        return self.status


class BranchNote(db.Model):
    """What someone tried or saw on a branch: Markdown text, and files."""

    __tablename__ = "branch_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(
        ForeignKey("branches.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    branch: Mapped[Branch] = relationship(back_populates="notes")
    author = relationship("User")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="note", order_by="Attachment.id", passive_deletes=True
    )


class Attachment(db.Model):
    """A file attached to a note (a log, a config, a screenshot).

    The bytes live in the attachment store (app/storage.py) under the key ``storage_path``,
    ``<case id>/<random hex>`` (older files: ``<case id>/<attachment id>-<random hex>``):
    never a name the uploader chose.
    ``text_content`` keeps a text file's content (decoded as UTF-8 with replacement, capped)
    for search and for the writer; None for binary files.
    """

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(
        ForeignKey("branch_notes.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    #: Bytes.
    size: Mapped[int] = mapped_column(default=0)
    storage_path: Mapped[str] = mapped_column(String(500), default="")
    text_content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    note: Mapped[BranchNote] = relationship(back_populates="attachments")

    @property
    def is_text(self) -> bool:
        return self.text_content is not None
