"""Writing case events, and the hook point every case change passes through.

``record_event`` is an *emit*: it adds the case event to the session and calls the
subscribers registered for its type, in the same transaction, so whatever they add (a root
branch, a task that sends an outbound webhook) commits or rolls back with the change. In the
spirit of alerta's ``post_receive`` / ``status_change`` plugin hooks.

Subscribers may only add rows: no commit, no network call, no sleeping. Slow or external
work is a task (``app.tasks.create_task``) that runs after the commit.

Just before the transaction commits (``_before_commit``), the events it wrote get their
``seq``, Lamport clock and node id (``app/events/clock.py``) in the order they were
recorded, and are validated against their type's JSON Schema (``app/events/schemas/``).
Stamping last means the clock row is the last lock a writer takes and is held only for
the commit itself (no deadlock with row locks taken earlier, e.g. ``SELECT … FOR UPDATE``
on the case). An invalid event is a bug: with ``TESTING`` it raises ``InvalidEvent``; in
production it is refused (deleted before the commit; the change itself still commits),
logged as ``event.refused`` and counted (``event_node.refused``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import bindparam
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

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


_PENDING = "casehook_case_events"
_events = CaseEvent.__table__
_STAMP = (
    _events.update()
    .where(_events.c.id == bindparam("event"))
    .values(seq=bindparam("s"), lamport=bindparam("l"))
)


@sa_event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Fill in what a new event needs to be inserted, and remember the events this
    transaction wrote or changed (stamped and checked at commit)."""
    pending = session.info.setdefault(_PENDING, {})
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, CaseEvent):
            continue
        if obj in session.new:
            obj._inserted_here = True
            obj.id = obj.id or new_id()
            obj.created_at = obj.created_at or clock.now()
            obj.correlation_id = obj.correlation_id or obj.causation_id or obj.id
            if not hasattr(obj, "_order"):
                obj._order = next(_order)
        pending[obj.id] = obj


@sa_event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    # Only the outermost transaction: a savepoint rolled back keeps the events before it.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


@sa_event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    """Stamp the transaction's new events in recorded order, then validate them all.
    Not for a savepoint's commit: stamping waits for the real one."""
    if session.in_nested_transaction():
        return
    if not session.info.get(_PENDING) and not any(
        isinstance(obj, CaseEvent) for obj in list(session.new) + list(session.dirty)
    ):
        return
    session.flush()
    events = sorted(session.info.pop(_PENDING, {}).values(),
                    key=lambda e: getattr(e, "_order", -1))  # fmt: skip
    # Belt and braces: any event of this session still without a position.
    known = {id(e) for e in events}
    events += [
        obj
        for obj in list(session.identity_map.values())
        if isinstance(obj, CaseEvent) and obj.seq is None and id(obj) not in known
    ]
    events = [e for e in events if e in session and e not in session.deleted]
    if not events:
        return
    connection = session.connection()
    unstamped = [event for event in events if event.seq is None]
    if unstamped:  # one statement for the transaction's events, in the order written
        last_seq, last_clock, node = node_clock.stamp(connection, len(unstamped))
        first = len(unstamped) - 1
        rows = [
            {"event": event.id, "s": last_seq - first + offset, "l": last_clock - first + offset}
            for offset, event in enumerate(unstamped)
        ]
        # The events are inserted (flushed above): one executemany in Core writes their
        # positions, and the objects are told the values are stored. Through the ORM the
        # unit of work cost a tenth of the worker's CPU per delivery.
        connection.execute(_STAMP.values(node_id=node), rows)
        for row, event in zip(rows, unstamped, strict=True):
            set_committed_value(event, "seq", row["s"])
            set_committed_value(event, "lamport", row["l"])
            set_committed_value(event, "node_id", node)
    refused = []
    for event in events:
        with session.no_autoflush:
            found = schemas.problems(event.to_dict())
        if not found:
            continue
        message = f"case event {event.type} is not valid: " + "; ".join(found[:5])
        if _strict():
            raise InvalidEvent(message)
        log.error("event.refused", event_id=event.id, type=event.type, case_id=event.case_id,
                  problems=found[:5])  # fmt: skip
        node_clock.count_refused(connection)
        if getattr(event, "_inserted_here", False):
            refused.append(event)  # not stored; an older, valid version stays as it was
    for event in refused:
        session.delete(event)
    session.flush()
    session.info.pop(_PENDING, None)
