"""Case events as the API shows them (``/api/events``, and inside case answers)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.api.schemas import Cursor, Id, Out, Page, PageQuery, Timestamp, whole
from app.events import stream


class Event(Out):
    """A case event; its ``payload`` follows the JSON Schema of its ``type``
    (``GET /api/events/schemas``)."""

    id: str = Field(description="ULID; the stream's cursor")
    seq: int | None = Field(description="Storage position on this node (read order)")
    type: str
    case_id: int | None
    node_id: str | None
    lamport: int | None
    causation_id: str | None
    correlation_id: str | None
    delivery_id: str | None = Field(description="The provider's delivery id that caused it")
    event_type: str | None = Field(description="The provider's event type of that delivery")
    actor: str | None
    payload: dict[str, Any]
    created_at: Timestamp | None

    @classmethod
    def of(cls, event: Any) -> Event:
        return cls.model_validate(event.to_dict())


class EventQuery(PageQuery):
    limit: whole(1, stream.MAX_LIMIT) = Field(100, description="At most this many events")
    after: Cursor | None = Field(None, description="An event id: the events stored after it")
    type: str | None = Field(None, max_length=100, description="Type pattern, e.g. case.*")
    case_id: Id | None = Field(None, description="Only this case's events")


class EventPage(Page):
    events: list[Event]
    next_after: str | None = Field(
        description="The last event's id (pass as after=); null when nothing was returned: "
        "ask again later with the same after"
    )


class EventSchemas(Out):
    schemas: dict[str, dict[str, Any]] = Field(
        description="type → JSON Schema (draft 2020-12) of a whole event of that type"
    )
