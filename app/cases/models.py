"""Cases: the unit of work an engineer owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db

CASE_STATUSES = ("open", "escalated", "parked", "resolved", "closed")
#: Statuses in which a case is being worked (or waits to be): deliveries update it.
LIVE_STATUSES = ("open", "escalated", "parked")
CLOSE_REASONS = ("manual", "callback", "auto")
SEVERITIES = ("critical", "error", "warning", "info")


class Case(db.Model):
    """A case. Deliveries with the same ``dedup_key`` on one endpoint land on one case."""

    __tablename__ = "cases"
    __table_args__ = (
        # One case per dedup key and endpoint, ever: a later "reopened" reopens it.
        UniqueConstraint("endpoint_id", "dedup_key", name="uq_cases_endpoint_dedup_key"),
        Index("ix_cases_updated_at", "updated_at"),
        Index("ix_cases_status", "status"),
        Index("ix_cases_severity", "severity"),
        Index("ix_cases_provider", "provider"),
        Index("ix_cases_status_created", "status", "created_at"),
        # The summary's counts in one read (queries.case_summary).
        Index("ix_cases_status_severity_provider", "status", "severity", "provider"),
        # Title search: Postgres has ix_cases_title_trgm (migration 0017) when pg_trgm is
        # available; SQLite the FTS5 table cases_title_fts (0022) when FTS5 is built in.
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="open")
    provider: Mapped[str] = mapped_column(String(32))
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("endpoints.id", ondelete="SET NULL"))
    dedup_key: Mapped[str | None] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(20), default="info")
    source_url: Mapped[str | None] = mapped_column(Text)
    #: Where replies go: the provider's ``reply_target`` for the delivery that opened the
    #: case (repository and number, channel and thread, ...); None when it has none.
    source: Mapped[dict | None] = mapped_column(JSON)
    delivery_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)
    closed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(20))
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[list] = mapped_column(JSON, default=list)
    #: When the status last changed; time since then is added to active or parked seconds.
    status_changed_at: Mapped[datetime | None]
    active_seconds: Mapped[int] = mapped_column(default=0)
    parked_seconds: Mapped[int] = mapped_column(default=0)
    resolved_at: Mapped[datetime | None]
    resolution_summary: Mapped[str | None] = mapped_column(Text)
    #: Someone has seen it and is on it (PagerDuty's triggered → acknowledged); cleared when
    #: the case reopens. ``acknowledged_by`` is the email, kept if the account goes.
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(320))
    #: The branch being worked (see app/branches); no FK, branches reference cases.
    active_branch_id: Mapped[int | None]

    events = relationship("CaseEvent", back_populates="case", order_by="CaseEvent.id")
    endpoint = relationship("Endpoint")
    assignee = relationship("User")

    def to_dict(self) -> dict:
        """The case as the JSON API shows it (see ``/api/cases``)."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "provider": self.provider,
            "endpoint_id": self.endpoint_id,
            "dedup_key": self.dedup_key,
            "severity": self.severity,
            "source_url": self.source_url,
            "source": self.source,
            "delivery_count": self.delivery_count,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "closed_at": _iso(self.closed_at),
            "closed_reason": self.closed_reason,
            "assignee": self.assignee.email if self.assignee else None,
            "tags": list(self.tags or []),
            "active_seconds": self.active_seconds,
            "parked_seconds": self.parked_seconds,
            "resolved_at": _iso(self.resolved_at),
            "resolution_summary": self.resolution_summary,
            "acknowledged_at": _iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
        }


def _iso(moment: datetime | None) -> str | None:
    from app.templating import as_utc

    return as_utc(moment).isoformat() if moment else None
