"""What happened, for the top of the case page: the source's own content, as its provider
module says (``Provider.incident``), read from the delivery that opened the case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import undefer

from app.cases.models import Case
from app.cases.queries import deliveries_of
from app.events.models import CaseEvent
from app.extensions import db
from app.logs import log
from app.webhooks.models import Delivery
from app.webhooks.payloads import parse_payload
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import Incident


@dataclass(frozen=True)
class CaseIncident:
    """The incident and the delivery it was read from (None: the case has none)."""

    incident: Incident
    delivery: Delivery | None


def case_incident(case: Case) -> CaseIncident:
    """The incident of ``case``: from the delivery whose ``case.opened`` event opened it, else
    its first delivery. A delivery carrying several alerts (Alertmanager) shows the alert
    that is this case's (same dedup key). Never raises: a body the provider cannot read
    shows nothing, the case page still opens."""
    delivery = source_delivery(case)
    if delivery is None:
        return CaseIncident(Incident(), None)
    try:
        incident = _read(case, delivery)
    except Exception as exc:  # hostile payloads: the page opens without the incident
        log.warning(
            "case.incident_unreadable", case_id=case.id, delivery_pk=delivery.id, error=repr(exc)
        )
        incident = Incident()
    return CaseIncident(incident, delivery)


def source_delivery(case: Case) -> Delivery | None:
    """The delivery that opened ``case`` (its ``case.opened`` event's), else its earliest,
    with its headers and body (which the incident is read from) in the same statement."""
    if "events" in case.__dict__:  # loaded already (the case page): no query for the event
        opened = next(
            (e.delivery_pk for e in case.events if e.type == "case.opened" and e.delivery_pk),
            None,
        )
    else:
        opened = db.session.scalar(
            db.select(CaseEvent.delivery_pk)
            .where(
                CaseEvent.case_id == case.id,
                CaseEvent.type == "case.opened",
                CaseEvent.delivery_pk.is_not(None),
            )
            .limit(1)
        )
    # The delivery may sit in the session with its body and headers deferred (the case
    # page's lists): one statement that fills them, rather than one lazy load each.
    whole = (undefer(Delivery.body), undefer(Delivery.headers))
    if opened is not None:
        return db.session.get(Delivery, opened, options=whole, populate_existing=True)
    return db.session.scalars(
        deliveries_of(case)
        .order_by(Delivery.received_at)
        .limit(1)
        .options(*whole)
        .execution_options(populate_existing=True)
    ).first()


def _read(case: Case, delivery: Delivery) -> Incident:
    endpoint = delivery.endpoint
    provider = get_provider(endpoint.provider if endpoint else case.provider)
    if provider is None:
        return Incident()
    payload = parse_payload(dict(delivery.headers or {}), delivery.body or b"")
    settings = dict(endpoint.settings or {}) if endpoint else {}
    event_type, subject = _subject(case, provider, delivery.event_type, payload, settings)
    return provider.incident(event_type, subject)


def _subject(
    case: Case, provider: Any, event_type: str, payload: dict, settings: dict
) -> tuple[str, Any]:
    """The ``(event type, payload)`` of the delivery's items that is about ``case``."""
    items = provider.split(event_type, payload, settings)
    if len(items) == 1:
        return items[0]
    for item in items:
        if case.dedup_key and provider.case_facts(*item).dedup_key == case.dedup_key:
            return item
    return items[0] if items else (event_type, payload)
