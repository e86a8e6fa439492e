"""Writing case events."""

from __future__ import annotations

from typing import Any

from app.events.models import CaseEvent
from app.extensions import db


def record_event(
    case: Any,
    type_: str,
    *,
    delivery: Any = None,
    actor: str | None = None,
    payload: dict | None = None,
) -> CaseEvent:
    """Add a ``CaseEvent`` of ``type_`` ("case.opened", ...) to the session, uncommitted.

    The caller commits it together with the case change, so the two never disagree.
    ``delivery`` (a stored ``Delivery``) becomes the causation.
    """
    event = CaseEvent(
        case_id=case.id,
        type=type_,
        causation_id=delivery.id if delivery is not None else None,
        delivery_pk=delivery.id if delivery is not None else None,
        actor=actor,
        payload=payload or {},
    )
    db.session.add(event)
    return event
