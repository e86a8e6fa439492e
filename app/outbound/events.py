"""Every case event becomes a message to each enabled subscription that wants it, queued
in the same transaction as the change (so a change and its messages commit together)."""

from __future__ import annotations

from typing import Any

from app import clock
from app.events.models import CaseEvent
from app.events.record import subscribe
from app.extensions import db
from app.ids import new_id
from app.outbound.models import Subscription
from app.outbound.service import enqueue, wants


@subscribe("*")
def queue_messages(case: Any, event: CaseEvent) -> None:
    """Queue an ``outbound.send`` task per matching enabled subscription."""
    subscriptions = db.session.scalars(
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
