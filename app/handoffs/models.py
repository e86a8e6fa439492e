"""Handoffs: parking (waiting on someone) or escalating (needs someone else) a case."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db

INTENTS = ("park", "escalate")
PRIORITIES = ("normal", "elevated")
#: The status a case moves to for each intent.
TARGET_STATUS = {"park": "parked", "escalate": "escalated"}


class Handoff(db.Model):
    """One park or escalation of a case, with what it looked like at that moment.

    ``snapshot`` is taken at creation (see ``service.build_snapshot`` for its shape);
    ``assessment`` (escalations) is ``{"likely_cause", "suggested_steps", "confidence"}``
    from the writer, or None when the writer gave none. ``briefing`` (Markdown) is written
    for whoever claims it. ``writer`` names the writer that produced the latest of those.
    A handoff waits in the queue until claimed (``claimed_at``).
    """

    __tablename__ = "handoffs"
    __table_args__ = (
        CheckConstraint("intent IN ('park', 'escalate')", name="intent"),
        CheckConstraint("priority IN ('normal', 'elevated')", name="priority"),
        # The queue: unclaimed, by priority then age.
        Index("ix_handoffs_claimed_at_created_at", "claimed_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    intent: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    #: "What are you waiting on?" (park) / "Why?" (escalate).
    notes: Mapped[str] = mapped_column(Text)
    waiting_on: Mapped[str | None] = mapped_column(String(500))
    #: When a parked case should be picked up again (informational; the queue shows it due).
    resume_at: Mapped[datetime | None]
    #: An escalation may name who should take it.
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)
    assessment: Mapped[dict | None] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None]
    briefing: Mapped[str | None] = mapped_column(Text)
    writer: Mapped[str | None] = mapped_column(String(100))

    case = relationship("Case")
    to_user = relationship("User", foreign_keys=[to_user_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    claimed_by = relationship("User", foreign_keys=[claimed_by_id])

    @property
    def claimed(self) -> bool:
        return self.claimed_at is not None

    def to_dict(self) -> dict:
        """The handoff as the JSON API shows it (times ISO 8601 UTC, users by email)."""
        from app.cases.models import _iso
        from app.handoffs.tasks import task_fields

        return {
            "id": self.id,
            "case_id": self.case_id,
            "intent": self.intent,
            "priority": self.priority,
            "notes": self.notes,
            "waiting_on": self.waiting_on,
            "resume_at": _iso(self.resume_at),
            "to_user": _email(self.to_user),
            "snapshot": self.snapshot or {},
            "assessment": self.assessment,
            "created_by": _email(self.created_by),
            "created_at": _iso(self.created_at),
            "claimed_by": _email(self.claimed_by),
            "claimed_at": _iso(self.claimed_at),
            "briefing": self.briefing,
            "writer": self.writer,
            # The tasks writing the assessment and the briefing (None: never asked for).
            **task_fields(self),
        }


def _email(user) -> str | None:
    return user.email if user is not None else None
