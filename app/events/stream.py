"""Reading case events as a stream, in storage order (``seq``).

``seq`` is handed out under the ``event_node`` row lock, so it is commit order (see
``app/events/clock.py``): a reader that continues after the last event it saw can never
miss one committed later with a smaller position. The public cursor is the event id; its
``seq`` is looked up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import selectinload

from app.errors import DomainError
from app.events.models import CaseEvent
from app.extensions import db

MAX_LIMIT = 1000


class UnknownCursor(DomainError, LookupError):
    """``after`` names no stored event (400)."""

    error, field = "invalid_cursor", "after"


def seq_of(event_id: str | None) -> int:
    """The ``seq`` of event ``event_id`` (0 for None); ``UnknownCursor`` if there is none."""
    if not event_id:
        return 0
    seq = db.session.scalar(db.select(CaseEvent.seq).where(CaseEvent.id == event_id))
    if seq is None:
        raise UnknownCursor(f"after names no event: {event_id!r}")
    return seq


def like_pattern(pattern: str) -> str:
    """An ``fnmatch``-style type pattern (``case.*``, ``output.?pproved``) as SQL LIKE
    (escape ``\\``)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def events_after(
    after_seq: int,
    limit: int = 100,
    *,
    type_pattern: str | None = None,
    case_id: int | None = None,
) -> list[CaseEvent]:
    """Up to ``limit`` (≤ 1000) events with ``seq > after_seq`` in seq order, optionally
    only of types matching ``type_pattern`` and of case ``case_id``."""
    query = (
        db.select(CaseEvent)
        .options(selectinload(CaseEvent.delivery))
        .where(CaseEvent.seq > after_seq)
        .order_by(CaseEvent.seq)
        .limit(max(1, min(int(limit), MAX_LIMIT)))
    )
    if type_pattern:
        query = query.where(CaseEvent.type.like(like_pattern(type_pattern), escape="\\"))
    if case_id is not None:
        query = query.where(CaseEvent.case_id == case_id)
    return list(db.session.scalars(query).all())


def page(
    after: str | None,
    limit: int = 100,
    *,
    type_pattern: str | None = None,
    case_id: int | None = None,
) -> dict[str, Any]:
    """``{"events": [event...], "next_after": id | None}`` after event ``after``.

    ``next_after`` is the last returned event's id (pass it as ``after`` next time); None
    when nothing was returned: ask again later with the same ``after``.
    """
    events = events_after(seq_of(after), limit, type_pattern=type_pattern, case_id=case_id)
    return {
        "events": [event.to_dict() for event in events],
        "next_after": events[-1].id if events else None,
    }


def pending_after(after_seq: int) -> int:
    """How many events come after ``after_seq``."""
    return db.session.scalar(
        db.select(db.func.count()).select_from(CaseEvent).where(CaseEvent.seq > after_seq)
    )
