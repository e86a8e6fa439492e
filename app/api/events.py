"""``/api/events``: the case-event stream, and the JSON Schemas its events follow."""

from __future__ import annotations

from app.accounts.auth import require_role
from app.api import bp
from app.api.schemas.events import EventPage, EventQuery, EventSchemas
from app.api.spec import operation
from app.events import schemas, stream


@bp.get("/events")
@require_role("viewer")
@operation(query=EventQuery, responses={200: EventPage}, tag="events")
def list_events(query: EventQuery) -> EventPage:
    """Case events in storage order, after the event ``after`` (absent: from the start).

    At most ``limit`` (1-1000, default 100), only of types matching ``type`` (``case.*``)
    and of case ``case_id`` when given. Follow ``next_after`` to read on; null means
    nothing more yet (keep your ``after``). No event committed later can appear before one
    you have read. 400 for an ``after`` that names no event.
    """
    body = stream.page(
        query.after,
        query.limit,
        type_pattern=(query.type or "").strip() or None,
        case_id=query.case_id,
    )
    return EventPage.model_validate(body)


@bp.get("/events/schemas")
@require_role("viewer")
@operation(responses={200: EventSchemas}, tag="events")
def event_schemas() -> EventSchemas:
    """The JSON Schema (draft 2020-12) of a whole event, per event type."""
    return EventSchemas(schemas=schemas.all_schemas())
