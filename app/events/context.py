"""What caused the case events being written now, and which chain of work they belong to.

* **causation id**: the one thing that caused an event: the delivery (``Delivery.id``), the
  task (``Task.id``), or the request (a per-request id) for a person's or a script's action.
* **correlation id**: shared by every event one delivery or one request caused, including
  those written later by tasks it created (``create_task`` copies it into the task's payload
  as ``correlation_id`` and the runner puts it back around the handler).

Inbox processing and the task runner set both with ``caused_by``; in a request they default
to one id made per request (kept in ``flask.g``); elsewhere (CLI, sweeps) each event gets
its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import g, has_request_context

from app.ids import new_id

_current: ContextVar[tuple[str | None, str | None]] = ContextVar(
    "casehook_event_cause", default=(None, None)
)


@contextmanager
def caused_by(causation_id: str | None, correlation_id: str | None = None) -> Iterator[None]:
    """Events written inside the block have ``causation_id`` as their cause and
    ``correlation_id`` (default: ``causation_id``) as their correlation."""
    token = _current.set((causation_id, correlation_id or causation_id))
    try:
        yield
    finally:
        _current.reset(token)


def request_id() -> str | None:
    """This request's id (made on first use), or None outside a request."""
    if not has_request_context():
        return None
    if "casehook_request_id" not in g:
        g.casehook_request_id = new_id()
    return g.casehook_request_id


def current() -> tuple[str | None, str | None]:
    """``(causation_id, correlation_id)`` in effect here (either may be None)."""
    causation, correlation = _current.get()
    if causation is None and correlation is None:
        rid = request_id()
        return rid, rid
    return causation, correlation


def current_correlation() -> str | None:
    return current()[1]
