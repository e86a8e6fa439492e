"""Deliveries as the API shows them (``/api/deliveries``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.api.schemas import Out, Page, PageQuery, Timestamp, whole
from app.inputs import MAX_PAGE
from app.webhooks.views_support import STATUSES, VERDICTS, iso, replay_refusal


class Delivery(Out):
    """A received webhook delivery (the log)."""

    id: str
    endpoint_id: str | None
    delivery_id: str | None = Field(description="The provider's delivery id")
    event_type: str | None
    received_at: Timestamp | None
    verdict: Literal[VERDICTS]  # type: ignore[valid-type]
    verdict_detail: str | None
    status: str | None = Field(description=f"One of {', '.join(STATUSES)}")
    outcome: str | None
    case_id: int | None
    processed_at: Timestamp | None
    processing_ms: float | None
    replayable: bool

    @classmethod
    def of(cls, delivery: Any) -> Delivery:
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            delivery_id=delivery.delivery_id,
            event_type=delivery.event_type,
            received_at=iso(delivery.received_at),
            verdict=delivery.verdict,
            verdict_detail=delivery.verdict_detail,
            status=delivery.status,
            outcome=delivery.outcome,
            case_id=delivery.case_id,
            processed_at=iso(delivery.processed_at),
            processing_ms=delivery.processing_ms,
            replayable=replay_refusal(delivery) is None,
        )


class DeliveryFull(Delivery):
    """A delivery with what was received: its stored ``headers`` (credentials redacted at
    receipt) and its ``body`` as text (undecodable bytes as U+FFFD)."""

    headers: dict[str, Any]
    body: str | None
    body_bytes: int

    @classmethod
    def of(cls, delivery: Any) -> DeliveryFull:
        return cls(
            **Delivery.of(delivery).model_dump(),
            headers=delivery.headers or {},
            body=delivery.body_text,
            body_bytes=len(delivery.body or b""),
        )


class DeliveryQuery(PageQuery):
    endpoint_id: str | None = Field(None, max_length=26)
    verdict: Literal[VERDICTS] | None = None  # type: ignore[valid-type]
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]
    limit: whole(1, 100) | None = Field(None, description="Deliveries per page (default 50)")
    after: str | None = Field(
        None, max_length=9, pattern=r"^[0-9]+$", description="next_after of the previous page"
    )
    page: whole(1, MAX_PAGE) | None = Field(None, description="1-based (or use after)")


class DeliveryList(Page):
    """Newest first."""

    deliveries: list[Delivery]
    total: int
    page: int
    per_page: int


class DeliveryReplayed(Out):
    delivery: Delivery = Field(description="The delivery that will run")
    replay_of: str
    requeued: bool = Field(
        description="The same unfinished delivery queued again; otherwise a copy whose "
        "delivery id ends #replay-<n>"
    )
