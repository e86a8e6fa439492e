"""``/api/deliveries``: the deliveries log as JSON, and replay.

Reads need the viewer role; replay needs engineer (it runs the delivery's commands again).
Errors are ``{"error", "detail"}``.
"""

from __future__ import annotations

from flask import jsonify, request

from app.accounts.auth import require_role
from app.api import bp
from app.extensions import db
from app.inputs import InputError
from app.webhooks.models import Delivery
from app.webhooks.views_support import (
    DELIVERIES_PER_PAGE,
    STATUSES,
    VERDICTS,
    DeliveryFilters,
    ManageError,
    delivery_dict,
    replay,
    search_deliveries,
)


def _delivery(delivery_pk: str) -> Delivery:
    return db.get_or_404(Delivery, delivery_pk, description=f"there is no delivery {delivery_pk}")


@bp.get("/deliveries")
@require_role("viewer")
def list_deliveries():
    """``{"deliveries": [delivery...], "total", "page", "per_page"}``, newest first, filtered
    by ``endpoint_id``, ``verdict`` (accepted|rejected|unauthorized), ``status``
    (received|processed|failed|refused); ``page`` is 1-based. A delivery is ``{"id",
    "endpoint_id", "delivery_id", "event_type", "received_at", "verdict", "verdict_detail",
    "status", "outcome", "case_id", "processed_at", "processing_ms", "replayable"}``."""
    for name, allowed in (("verdict", VERDICTS), ("status", STATUSES)):
        value = request.args.get(name)
        if value and value not in allowed:
            return jsonify(
                error="invalid_filter", detail=f"{name} must be one of {', '.join(allowed)}"
            ), 400
    try:
        filters = DeliveryFilters.from_args(request.args)
    except InputError as exc:
        return jsonify(error="invalid_filter", detail=str(exc)), 400
    deliveries, total = search_deliveries(filters, DELIVERIES_PER_PAGE)
    return jsonify(
        deliveries=[delivery_dict(delivery) for delivery in deliveries],
        total=total,
        page=filters.page,
        per_page=DELIVERIES_PER_PAGE,
    )


@bp.get("/deliveries/<delivery_pk>")
@require_role("viewer")
def get_delivery(delivery_pk: str):
    """One delivery with its stored ``headers`` (credentials redacted at receipt) and its
    ``body`` as text (undecodable bytes as U+FFFD), plus ``body_bytes``."""
    return jsonify(delivery_dict(_delivery(delivery_pk), full=True))


@bp.post("/deliveries/<delivery_pk>/replay")
@require_role("engineer")
def replay_delivery_api(delivery_pk: str):
    """Replay through the same processing: 202 ``{"delivery": the delivery that will run,
    "replay_of": id, "requeued": bool}`` (requeued: the same unfinished delivery queued again;
    otherwise a copy whose delivery id ends ``#replay-<n>``). Refused deliveries: 409."""
    original = _delivery(delivery_pk)
    try:
        replayed, requeued = replay(original)
    except ManageError as exc:
        return jsonify(error=exc.error, detail=exc.detail), exc.status
    return jsonify(delivery=delivery_dict(replayed), replay_of=original.id, requeued=requeued), 202
