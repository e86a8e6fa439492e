"""Resolution outputs: the three documents written when a case is resolved (SPEC C6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.writing import KIND_LABELS, KINDS

OUTPUT_STATUSES = ("draft", "approved", "rejected", "pushed")


class ResolutionOutput(db.Model):
    """One resolution output of a case: ``kind`` ticket_notes | kb_article | client_summary.

    One row per case and kind: writing again (resolving again, regenerating) updates it.
    ``content`` is the Markdown people read, edit and approve; ``generated_content`` what the
    writer last wrote (the same unless someone edited, or kept their edits on a regenerate).
    ``data`` holds the KB article as structured data (``{"title", "symptoms", "root_cause",
    "resolution_steps", "rule_out_first": [{"branch", "reason"}], "tags"}``), else ``{}``.
    ``writer`` is "builtin" or "llm" (``model``: the LLM model that wrote it).
    """

    __tablename__ = "resolution_outputs"
    __table_args__ = (
        UniqueConstraint("case_id", "kind", name="uq_resolution_outputs_case_kind"),
        CheckConstraint("kind IN ('ticket_notes', 'kb_article', 'client_summary')", name="kind"),
        CheckConstraint("status IN ('draft', 'approved', 'rejected', 'pushed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    content: Mapped[str] = mapped_column(Text, default="")
    generated_content: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    writer: Mapped[str] = mapped_column(String(20), default="builtin")
    model: Mapped[str | None] = mapped_column(String(200))
    edited: Mapped[bool] = mapped_column(default=False)
    generated_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None]
    #: Where an approved output was last pushed (``source``, ``subscription:<id>``) and when.
    pushed_to: Mapped[str | None] = mapped_column(String(200))
    pushed_at: Mapped[datetime | None]

    case = relationship("Case")
    approved_by = relationship("User")

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def filename(self) -> str:
        """The download's file name: ``case-<case id>-<kind>.md``."""
        return f"case-{self.case_id}-{self.kind}.md"

    def to_dict(self) -> dict:
        """The output as the JSON API shows it."""
        from app.cases.models import _iso

        return {
            "id": self.id,
            "case_id": self.case_id,
            "kind": self.kind,
            "label": self.label,
            "status": self.status,
            "content": self.content,
            "generated_content": self.generated_content,
            "data": self.data or {},
            "writer": self.writer,
            "model": self.model,
            "edited": self.edited,
            "generated_at": _iso(self.generated_at),
            "updated_at": _iso(self.updated_at),
            "approved_by": self.approved_by.email if self.approved_by else None,
            "approved_at": _iso(self.approved_at),
            "pushed_to": self.pushed_to,
            "pushed_at": _iso(self.pushed_at),
        }


def kind_order(output: ResolutionOutput) -> int:
    return KINDS.index(output.kind) if output.kind in KINDS else len(KINDS)
