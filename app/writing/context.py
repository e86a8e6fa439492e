"""The writer context: a whole case as plain data (the shape is in ``app/writing``).

The case, its events and its deliveries are read here; features add their own part at
import time with ``register_context`` (``app.branches`` gives ``branches`` and
``active_branch_id``, ``app.handoffs`` gives ``handoffs``), so this package imports none of
them and none of them import each other for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db

_parts: list[Callable[[Case], dict]] = []


def register_context(provide: Callable[[Case], dict]) -> Callable[[Case], dict]:
    """Register ``provide(case) -> dict`` whose keys join every case context (usable as a
    decorator). ``provide`` only reads."""
    _parts.append(provide)
    return provide


def case_context(case: Case) -> dict:
    """``{"case", "events", "deliveries", "incident", "branches", "active_branch_id",
    "handoffs"}`` for ``case`` — plain dicts only, times as ISO 8601 UTC strings. Reads only.

    ``deliveries`` are ``{"event_type", "summary", "received_at"}`` oldest first; the summary
    is the one the provider module gave the case event the delivery caused (None if it
    caused none). ``branches`` and ``handoffs`` are ``[]`` (``active_branch_id`` the case's)
    unless a registered feature gives them.
    """
    from app.cases.queries import deliveries_of
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
    deliveries = db.session.scalars(deliveries_of(case).order_by(Delivery.received_at, Delivery.id))
    context: dict = {
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
        "branches": [],
        "active_branch_id": case.active_branch_id,
        "handoffs": [],
    }
    for provide in _parts:
        context.update(provide(case))
    return context


@register_context
def _incident(case: Case) -> dict:
    """``incident``: what the source said (``Provider.incident`` of the delivery that opened
    the case): ``{"description": Markdown, "facts": [{"label", "value"}]}``."""
    from app.cases.incident import case_incident

    shown = case_incident(case).incident
    return {
        "incident": {
            "description": shown.body_markdown,
            "facts": [{"label": f.label, "value": f.value} for f in shown.fields],
        }
    }
