"""The writer context: a whole case as plain data (the shape is in ``writers.py``)."""

from __future__ import annotations

from typing import Any

from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db


def case_context(case: Case) -> dict:
    """``{"case", "events", "deliveries", "branches", "active_branch_id", "handoffs"}`` for
    ``case`` — plain dicts only, times as ISO 8601 UTC strings.

    ``deliveries`` are ``{"event_type", "summary", "received_at"}`` oldest first; the summary
    is the one the provider module gave the case event the delivery caused (None if it
    caused none). ``branches`` come from ``app.branches.service.branches_for_context`` and
    ``handoffs`` from ``app.handoffs``; each is ``[]`` when that feature is absent.
    """
    from app.templating import as_utc
    from app.webhooks.models import Delivery

    events = list(
        db.session.scalars(
            db.select(CaseEvent)
            .where(CaseEvent.case_id == case.id)
            .order_by(CaseEvent.created_at, CaseEvent.id)
        )
    )
    summaries: dict[str, Any] = {}
    for event in events:
        if event.delivery_pk and event.delivery_pk not in summaries:
            summaries[event.delivery_pk] = (event.payload or {}).get("summary")
    deliveries = db.session.scalars(
        db.select(Delivery)
        .where(Delivery.case_id == case.id)
        .order_by(Delivery.received_at, Delivery.id)
    )
    return {
        "case": case.to_dict(),
        "events": [event.to_dict() for event in events],
        "deliveries": [
            {
                "event_type": delivery.event_type,
                "summary": summaries.get(delivery.id),
                "received_at": as_utc(delivery.received_at).isoformat(),
            }
            for delivery in deliveries
        ],
        "branches": _branches(case),
        "active_branch_id": case.active_branch_id,
        "handoffs": _handoffs(case),
    }


def _branches(case: Case) -> list[dict]:
    from app.branches.service import branches_for_context  # late: branches import outputs

    return list(branches_for_context(case) or [])


def _handoffs(case: Case) -> list[dict]:
    from app.handoffs.service import handoffs_for_writer  # late: handoffs import outputs

    return handoffs_for_writer(case)
