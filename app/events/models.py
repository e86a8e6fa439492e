"""Case events: every change to a case, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.ids import new_id


class CaseEvent(db.Model):
    """One change to a case.

    ``id`` is a ULID (time-ordered, but *not* commit-ordered across processes).
    ``seq`` is this database's position of the event: assigned just before the commit from
    the ``event_node`` row, under that row's lock, so seq order is commit order (readers page
    and sync by it; see ``app/events/clock.py``). ``lamport`` is the node's Lamport clock
    and ``node_id`` the installation that wrote it. ``causation_id`` is what caused it: the
    stored delivery's id (``Delivery.id``), the task's id, or the request's id for a person's
    action. ``correlation_id`` is shared by every event one delivery or one request caused
    (tasks carry it on). ``payload`` is a small JSON object describing the change (e.g.
    ``{"title": ..., "event_type": ...}``), validated against ``schemas/<type>.json``.
    """

    __tablename__ = "case_events"
    #: The case page's "anything new?" check reads the case's highest seq at the end of it.
    __table_args__ = (Index("ix_case_events_case_seq", "case_id", "seq"),)

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
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, index=True)
    lamport: Mapped[int | None] = mapped_column(BigInteger)
    node_id: Mapped[str | None] = mapped_column(String(26))
    correlation_id: Mapped[str | None] = mapped_column(String(64))

    case = relationship("Case", back_populates="events")
    delivery = relationship("Delivery")

    def to_dict(self) -> dict:
        from app.cases.models import _iso

        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "case_id": self.case_id,
            "node_id": self.node_id,
            "lamport": self.lamport,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "delivery_id": self.delivery.delivery_id if self.delivery else None,
            "event_type": self.delivery.event_type if self.delivery else None,
            "actor": self.actor,
            "payload": self.payload,
            "created_at": _iso(self.created_at),
        }


class EventNode(db.Model):
    """This installation as an event source: one row (``id`` 1).

    ``node_id``: a ULID made once per installation. ``clock``: the Lamport clock, +1 per
    event and moved past a received event's clock (``observe``). ``seq``: the last local
    storage position handed out. ``refused``: events refused for not matching their schema
    (production only; tests raise).
    """

    __tablename__ = "event_node"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(26))
    clock: Mapped[int] = mapped_column(BigInteger, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    refused: Mapped[int] = mapped_column(BigInteger, default=0)


class SyncState(db.Model):
    """Where sync to ``CASEHOOK_SYNC_URL`` stands: one row (``id`` 1).

    ``cursor_seq``/``cursor_event_id``: the last event the target acknowledged (2xx).
    ``failures``: failed attempts in a row (the backoff grows with it). ``next_attempt_at``:
    no batch is sent before it. ``auth_blocked``: the fingerprint of the URL and token that
    got a 401; nothing is sent while the configuration still has that fingerprint.
    """

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cursor_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    cursor_event_id: Mapped[str | None] = mapped_column(String(26))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    auth_blocked: Mapped[str | None] = mapped_column(String(64))
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
