"""Every case event becomes a message to each enabled subscription that wants it, queued
in the same transaction as the change (so a change and its messages commit together)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app import clock
from app.events.models import CaseEvent
from app.events.record import subscribe
from app.extensions import db
from app.ids import new_id
from app.outbound.models import Subscription
from app.outbound.service import enqueue, wants

_CACHE = "casehook.outbound_subscriptions"


@subscribe("*")
def queue_messages(case: Any, event: CaseEvent) -> None:
    """Queue an ``outbound.send`` task per matching enabled subscription."""
    session = db.session()
    # Read once per transaction: a batch of changes (a bench, a bulk close) asks once.
    subscriptions = session.info.get(_CACHE)
    if subscriptions is None:
        subscriptions = session.info[_CACHE] = db.session.scalars(
            db.select(Subscription).where(Subscription.enabled.is_(True))
        ).all()
    targets = [s for s in subscriptions if wants(s, event.type, case)]
    if not targets:
        return
    # The message names the event before it is flushed: give it its id and time now.
    event.id = event.id or new_id()
    event.created_at = event.created_at or clock.now()
    db.session.flush()
    for subscription in targets:
        enqueue(subscription, event.type, event_id=event.id)


@sa_event.listens_for(Session, "after_commit")
@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CACHE, None)
