"""Endpoints (configured inbound webhooks) and deliveries (what arrived, stored as it came)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.ids import new_id


class Endpoint(db.Model):
    """One inbound webhook: a provider and a secret; URL ``/webhooks/<provider>/<id>``.

    The secret is either stored Fernet-encrypted (``secret_encrypted``) or named by an
    environment variable (``secret_env``), never in clear.
    """

    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    secret_env: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    #: Provider-specific options, e.g. Alertmanager ``{"group_by": "fingerprint"|"groupKey"}``.
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    #: ``console`` (made by people: console, API, CLI) or ``config`` (a YAML file owns it).
    source: Mapped[str] = mapped_column(String(20), default="console")
    #: For ``config`` endpoints: the file that declares it, relative to CASEHOOK_CONFIG_DIR.
    config_file: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    #: SHA-256 of the token for ``POST /api/cases/<id>/callback`` (app/cases/callbacks.py).
    callback_token_hash: Mapped[str | None] = mapped_column(String(64))
    callback_token_created_at: Mapped[datetime | None]

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="endpoint", lazy="dynamic")

    @property
    def path(self) -> str:
        return f"/webhooks/{self.provider}/{self.id}"


class Delivery(db.Model):
    """One received HTTP request, as it came. A fact: never edited after processing.

    ``delivery_id`` is the provider's id (``X-GitHub-Delivery``, ...), unique per endpoint; it
    is NULL on refused requests so that a forged request cannot claim a real delivery's id.
    ``verdict`` says whether the request was accepted; ``status`` where processing stands:
    ``received`` (stored, maybe not yet enqueued) → ``processed`` | ``failed``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "delivery_id", name="uq_deliveries_endpoint_delivery"),
        Index("ix_deliveries_status_received", "status", "received_at"),
        Index("ix_deliveries_inbox", "partition", "status", "received_at"),
        Index("ix_deliveries_case_received", "case_id", "received_at"),
        Index("ix_deliveries_endpoint_received", "endpoint_id", "received_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    delivery_id: Mapped[str | None] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200), default="")
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    verdict: Mapped[str] = mapped_column(String(20), default="accepted")
    verdict_detail: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="received")
    outcome: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime | None]
    processing_ms: Mapped[float | None]
    #: The inbox partition (``app/webhooks/inbox.py``): deliveries of one partition are
    #: processed in arrival order.
    partition: Mapped[int] = mapped_column(default=0)
    #: Failed processing attempts, and when the inbox tries again (None: not again).
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]

    endpoint: Mapped[Endpoint] = relationship(back_populates="deliveries")

    @property
    def body_text(self) -> str:
        """The body decoded for display; undecodable bytes shown as U+FFFD."""
        return (self.body or b"").decode("utf-8", errors="replace")

    @property
    def body_pretty(self) -> str:
        """The body as indented JSON when it is JSON (keys in the sender's order, non-ASCII
        kept), else as ``body_text``: for people reading it; the stored bytes stay as sent."""
        text = self.body_text
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            return text


class CommandRecord(db.Model):
    """A dynamic command stored for one endpoint (see ``app/webhooks/commands.py``).

    A record named like a built-in command overrides it (or, disabled, switches it off) for
    this endpoint. ``source`` says who owns it: ``console``/``api`` (people) or ``config``
    (a YAML file in ``CASEHOOK_CONFIG_DIR``, which rewrites it on every sync).
    """

    __tablename__ = "commands"
    __table_args__ = (UniqueConstraint("endpoint_id", "name", name="uq_commands_endpoint_name"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    definition: Mapped[dict] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(20), default="console")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)

    endpoint: Mapped[Endpoint] = relationship()
