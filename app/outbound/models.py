"""Subscriptions (outbound webhook targets) and the messages sent to them.

A message is one case event (or one forwarded delivery) to one subscription; sending it is
a task of kind ``outbound.send`` whose attempts (``TaskAttempt``: status, latency,
response excerpt) are the subscription's attempts log. A replay is a new message (and task)
for the same event: the same ``webhook-id``, so receivers can drop what they already have.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.ids import new_id


class Subscription(db.Model):
    """Where case events go: ``url``, the ``event_types`` wanted (patterns with ``*``), an
    optional ``endpoint_id`` / ``provider`` filter, extra ``headers``, and the signing secret
    (Fernet-encrypted, or named by ``secret_env``). During a rotation the previous secret
    signs too, until ``previous_secret_until``.

    Health: ``consecutive_failures`` counts messages that ran out of attempts in a row;
    ``failing_since`` is when the current run of failed attempts began (None when the last
    attempt succeeded). ``disabled_reason`` says why it was disabled ("410 Gone", ...).
    """

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list] = mapped_column(JSON, default=list)
    endpoint_id: Mapped[str | None] = mapped_column(String(26))
    provider: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    secret_env: Mapped[str | None] = mapped_column(String(200))
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: ``console`` (console, API, CLI) or ``config`` (a YAML file owns it).
    source: Mapped[str] = mapped_column(String(20), default="console")
    config_file: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    messages: Mapped[list[OutboundMessage]] = relationship(
        back_populates="subscription", cascade="all, delete-orphan", lazy="dynamic"
    )


class OutboundMessage(db.Model):
    """One message to one subscription, sent by the task ``task_id``.

    ``event_id`` is the case event (the ``webhook-id``); for a forwarded delivery with no
    case event, ``delivery_pk`` names the delivery and the ``webhook-id`` is ``delivery_<id>``.
    ``event_type`` is the message's ``type``.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_subscription", "subscription_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[str | None] = mapped_column(
        ForeignKey("case_events.id", ondelete="CASCADE"), index=True
    )
    delivery_pk: Mapped[str | None] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(50))
    task_id: Mapped[str | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    replay_of: Mapped[str | None] = mapped_column(String(26))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    subscription: Mapped[Subscription] = relationship(back_populates="messages")
    task = relationship("Task")

    @property
    def webhook_id(self) -> str:
        """Stable across retries and replays: the case event's id (or the delivery's)."""
        if self.event_id:
            return self.event_id
        return f"delivery_{self.delivery_pk}" if self.delivery_pk else f"msg_{self.id}"
