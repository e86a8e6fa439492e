"""Writing case events, and the hook point every case change passes through.

``record_event`` is an *emit*: it adds the case event to the session and calls the
subscribers registered for its type, in the same transaction, so whatever they add (a root
branch, a task that sends an outbound webhook) commits or rolls back with the change. In the
spirit of alerta's ``post_receive`` / ``status_change`` plugin hooks.

Subscribers may only add rows: no commit, no network call, no sleeping. Slow or external
work is a task (``app.tasks.create_task``) that runs after the commit.

When the session flushes new events (``_before_flush``), each gets its ``seq``, Lamport
clock and node id (``app/events/clock.py``) and is validated against its type's JSON Schema
(``app/events/schemas/``). An invalid event is a bug: with ``TESTING`` it raises
``InvalidEvent``; in production it is refused (not stored; the change itself still
commits), logged as ``event.refused`` and counted (``event_node.refused``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app import clock
from app.events import clock as node_clock
from app.events import context, schemas
from app.events.models import CaseEvent
from app.extensions import db
from app.ids import new_id
from app.logs import log

Subscriber = Callable[[Any, CaseEvent], None]
_subscribers: list[tuple[str, Subscriber]] = []
#: Creation order of events in this process, so one flush stamps them in the order written.
_order = itertools.count()


class InvalidEvent(ValueError):
    """A case event does not match its type's schema (a bug in the code that wrote it)."""


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
    ``delivery`` (a stored ``Delivery``) becomes the causation and correlation; otherwise
    they come from ``app.events.context`` (the task, the request). ``case`` must be flushed
    (it has an id).
    """
    causation, correlation = context.current()
    if delivery is not None:
        causation = delivery.id
        correlation = correlation or delivery.id
    event = CaseEvent(
        id=new_id(),
        case_id=case.id,
        type=type_,
        causation_id=causation,
        correlation_id=correlation,
        delivery_pk=delivery.id if delivery is not None else None,
        actor=actor,
        payload=payload or {},
        created_at=clock.now(),
    )
    if delivery is not None:
        event.delivery = delivery
    event._order = next(_order)
    db.session.add(event)
    for pattern, subscriber in list(_subscribers):
        if fnmatchcase(type_, pattern):
            subscriber(case, event)
    return event


def _strict() -> bool:
    return not has_app_context() or bool(current_app.config.get("TESTING"))


@sa_event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Stamp and validate the case events about to be written (see the module docstring)."""
    new = [obj for obj in session.new if isinstance(obj, CaseEvent)]
    changed = [obj for obj in session.dirty if isinstance(obj, CaseEvent)]
    if not new and not changed:
        return
    connection = None
    new.sort(key=lambda e: getattr(e, "_order", -1))
    for event in new:
        event.id = event.id or new_id()
        event.created_at = event.created_at or clock.now()
        event.correlation_id = event.correlation_id or event.causation_id or event.id
        if event.seq is None:
            connection = connection or session.connection()
            event.seq, event.lamport, event.node_id = node_clock.stamp(connection)
    for event in new + changed:
        with session.no_autoflush:
            found = schemas.problems(event.to_dict())
        if not found:
            continue
        message = f"case event {event.type} is not valid: " + "; ".join(found[:5])
        if _strict():
            raise InvalidEvent(message)
        log.error("event.refused", event_id=event.id, type=event.type, case_id=event.case_id,
                  problems=found[:5])  # fmt: skip
        node_clock.count_refused(connection or session.connection())
        if event in session.new:
            session.expunge(event)
        else:
            session.expire(event)  # keep the stored, valid version
