"""Case rules: open, update, close. Plain functions; callers commit.

Every change writes its case event in the same session (``record_event``), so a committed
case change always has its event and vice versa.
"""

from __future__ import annotations

from typing import Any

from app import clock
from app.cases import lifecycle
from app.cases.models import Case
from app.events.record import record_event
from app.extensions import db
from app.webhooks.providers.base import CaseFacts


def find_case(endpoint_id: str, dedup_key: str | None) -> Case | None:
    """The case with ``dedup_key`` on the endpoint, whatever its status; None without a key."""
    if not dedup_key:
        return None
    return db.session.scalars(
        db.select(Case).where(Case.endpoint_id == endpoint_id, Case.dedup_key == dedup_key)
    ).first()


def open_case(facts: CaseFacts, delivery: Any) -> tuple[Case, str]:
    """Open a case for ``delivery``; reopen or update the one with the same dedup key.

    Returns ``(case, outcome)`` where outcome is a short sentence for the deliveries log.
    """
    case = find_case(delivery.endpoint_id, facts.dedup_key)
    if case is None:
        return _create(facts, delivery), "opened a case"
    if not lifecycle.is_live(case):
        _refresh(case, facts)
        _touch(case, delivery)
        lifecycle.transition(case, "open", delivery=delivery, payload=_payload(facts, delivery))
        return case, "reopened the case"
    return update_case(facts, delivery, case)


def update_case(facts: CaseFacts, delivery: Any, case: Case | None = None) -> tuple[Case, str]:
    """Add ``delivery`` to its case's timeline (``case.updated``); open the case if none yet."""
    case = case or find_case(delivery.endpoint_id, facts.dedup_key)
    if case is None:
        return _create(facts, delivery), "opened a case"
    _refresh(case, facts)
    _touch(case, delivery)
    record_event(case, "case.updated", delivery=delivery, payload=_payload(facts, delivery))
    return case, "updated the case"


def close_case(facts: CaseFacts, delivery: Any, reason: str = "auto") -> tuple[Case | None, str]:
    """Close the case with the delivery's dedup key (``reason``: auto, manual, callback).

    A case that does not exist or is already closed is left alone; the outcome says so.
    """
    case = find_case(delivery.endpoint_id, facts.dedup_key)
    if case is None:
        return None, "no case to close"
    _touch(case, delivery)
    if case.status == "closed":
        record_event(case, "case.updated", delivery=delivery, payload=_payload(facts, delivery))
        return case, "case already closed"
    lifecycle.transition(
        case, "closed", reason=reason, delivery=delivery, payload=_payload(facts, delivery)
    )
    return case, f"closed the case ({reason})"


def _create(facts: CaseFacts, delivery: Any) -> Case:
    now = clock.now()
    case = Case(
        title=facts.title or "Untitled case",
        provider=delivery.endpoint.provider,
        endpoint_id=delivery.endpoint_id,
        dedup_key=facts.dedup_key,
        severity=facts.severity,
        source_url=facts.source_url,
        created_at=now,
        updated_at=now,
        status_changed_at=now,
        delivery_count=1,
    )
    db.session.add(case)
    db.session.flush()  # assigns case.id for the event
    delivery.case_id = case.id
    record_event(case, "case.opened", delivery=delivery, payload=_payload(facts, delivery))
    return case


def _refresh(case: Case, facts: CaseFacts) -> None:
    # Titles follow the source (an edited issue title); links fill in if they were missing.
    if facts.title:
        case.title = facts.title
    if facts.source_url:
        case.source_url = facts.source_url


def _touch(case: Case, delivery: Any) -> None:
    case.updated_at = clock.now()
    case.delivery_count = (case.delivery_count or 0) + 1
    delivery.case_id = case.id


def _payload(facts: CaseFacts, delivery: Any) -> dict:
    return {"event_type": delivery.event_type, "summary": facts.summary, "title": facts.title}
