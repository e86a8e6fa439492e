"""Writing case events, and the hook point every case change passes through.

``record_event`` is an *emit*: it adds the case event to the session and calls the
subscribers registered for its type, in the same transaction, so whatever they add (a root
branch, a task that sends an outbound webhook) commits or rolls back with the change. In the
spirit of alerta's ``post_receive`` / ``status_change`` plugin hooks.

Subscribers may only add rows: no commit, no network call, no sleeping. Slow or external
work is a task (``app.tasks.create_task``) that runs after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from app.events.models import CaseEvent
from app.extensions import db

Subscriber = Callable[[Any, CaseEvent], None]
_subscribers: list[tuple[str, Subscriber]] = []


def subscribe(pattern: str) -> Callable[[Subscriber], Subscriber]:
    """Decorator: call ``fn(case, event)`` for every case event whose type matches
    ``pattern`` (``fnmatch`` style: ``"case.opened"``, ``"case.*"``, ``"*"``).

    Registered at import time by the feature that cares (see ``app/branches/events.py``).
    """

    def register(fn: Subscriber) -> Subscriber:
        if (pattern, fn) not in _subscribers:
            _subscribers.append((pattern, fn))
        return fn

    return register


def record_event(
    case: Any,
    type_: str,
    *,
    delivery: Any = None,
    actor: str | None = None,
    payload: dict | None = None,
) -> CaseEvent:
    """Add a ``CaseEvent`` of ``type_`` ("case.opened", ...) to the session, uncommitted,
    and run its subscribers.

    The caller commits it together with the case change, so the two never disagree.
    ``delivery`` (a stored ``Delivery``) becomes the causation. ``case`` must be flushed
    (it has an id).
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
    for pattern, subscriber in list(_subscribers):
        if fnmatchcase(type_, pattern):
            subscriber(case, event)
    return event
