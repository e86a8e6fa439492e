"""``/api/deliveries``: the deliveries log as JSON, and replay.

Reads need the viewer role; replay needs engineer (it runs the delivery's commands again).
"""

from __future__ import annotations

from app.accounts.auth import require_role
from app.api import bp
from app.api.schemas import next_offset, offset_of
from app.api.schemas.deliveries import (
    Delivery,
    DeliveryFull,
    DeliveryList,
    DeliveryQuery,
    DeliveryReplayed,
)
from app.api.spec import operation
from app.extensions import db
from app.webhooks import models
from app.webhooks.views_support import (
    DELIVERIES_PER_PAGE,
    DeliveryFilters,
    replay,
    search_deliveries,
)


def _delivery(delivery_pk: str) -> models.Delivery:
    return db.get_or_404(
        models.Delivery, delivery_pk, description=f"there is no delivery {delivery_pk}"
    )


@bp.get("/deliveries")
@require_role("viewer")
@operation(query=DeliveryQuery, responses={200: DeliveryList}, tag="deliveries")
def list_deliveries(query: DeliveryQuery) -> DeliveryList:
    """The deliveries log, newest first.

    Filtered by ``endpoint_id``, ``verdict`` and ``status``; paged by ``limit`` (default
    50) and ``after`` (the previous answer's ``next_after``); ``page`` (1-based) still works.
    """
    per_page = query.limit or DELIVERIES_PER_PAGE
    offset = offset_of(query.after) if query.after else ((query.page or 1) - 1) * per_page
    filters = DeliveryFilters(
        endpoint_id=query.endpoint_id or "", verdict=query.verdict or "", status=query.status or ""
    )
    deliveries, total = search_deliveries(filters, per_page, offset)
    return DeliveryList(
        deliveries=[Delivery.of(delivery) for delivery in deliveries],
        total=total,
        page=offset // per_page + 1,
        per_page=per_page,
        next_after=next_offset(offset, len(deliveries), total),
    )


@bp.get("/deliveries/<delivery_pk>")
@require_role("viewer")
@operation(responses={200: DeliveryFull}, tag="deliveries")
def get_delivery(delivery_pk: str) -> DeliveryFull:
    """One delivery with its stored headers and body."""
    return DeliveryFull.of(_delivery(delivery_pk))


@bp.post("/deliveries/<delivery_pk>/replay")
@require_role("engineer")
@operation(responses={202: DeliveryReplayed}, tag="deliveries")
def replay_delivery_api(delivery_pk: str) -> tuple[DeliveryReplayed, int]:
    """Replay a delivery through the same processing.

    Refused (unauthorized or rejected) deliveries and connection tests: 409
    ``not_replayable``.
    """
    original = _delivery(delivery_pk)
    replayed, requeued = replay(original)
    return DeliveryReplayed(
        delivery=Delivery.of(replayed), replay_of=original.id, requeued=requeued
    ), 202
