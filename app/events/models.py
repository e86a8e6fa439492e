"""Case events: every change to a case, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.ids import new_id


class CaseEvent(db.Model):
    """One change to a case.

    ``id`` is a ULID (time-ordered). ``causation_id`` is what caused it: the stored delivery's
    id (``Delivery.id``) for provider-driven changes. ``payload`` is a small JSON object
    describing the change (e.g. ``{"title": ..., "event_type": ...}``).
    """

    __tablename__ = "case_events"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(50))
    causation_id: Mapped[str | None] = mapped_column(String(64))
    delivery_pk: Mapped[str | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    actor: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    case = relationship("Case", back_populates="events")
    delivery = relationship("Delivery")

    def to_dict(self) -> dict:
        from app.cases.models import _iso

        return {
            "id": self.id,
            "type": self.type,
            "causation_id": self.causation_id,
            "delivery_id": self.delivery.delivery_id if self.delivery else None,
            "event_type": self.delivery.event_type if self.delivery else None,
            "actor": self.actor,
            "payload": self.payload,
            "created_at": _iso(self.created_at),
        }
