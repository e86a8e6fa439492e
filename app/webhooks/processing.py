"""Processing a stored delivery: match its endpoint's commands, run their actions.

This is step 3 of SPEC §3. It is idempotent: the first statement claims the delivery
(``received``/``failed`` → ``processed``) and everything else happens in that transaction,
so a second run, or a concurrent one, changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app import clock
from app.cases import service
from app.extensions import db
from app.logs import log
from app.webhooks.command_store import commands_for
from app.webhooks.commands import matching, render
from app.webhooks.models import Delivery
from app.webhooks.payloads import parse_payload
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import PayloadError, Provider

ACTIONS = {
    "open_case": service.open_case,
    "update_case": service.update_case,
    "close_case": service.close_case,
}


def process_delivery(delivery_pk: str, attempts: int = 3) -> str:
    """Process the stored delivery ``delivery_pk`` (``Delivery.id``) and commit.

    Returns the outcome ("opened a case", "no command matched", "already processed", ...).
    Two workers opening the same new case race on the dedup key's unique constraint; the
    loser rolls back and tries again, then finds the winner's case.
    """
    for attempt in range(attempts):
        try:
            return _process_once(delivery_pk)
        except IntegrityError:
            db.session.rollback()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _process_once(delivery_pk: str) -> str:
    started = time.perf_counter()
    claimed = db.session.execute(
        db.update(Delivery)
        .where(Delivery.id == delivery_pk, Delivery.status.in_(("received", "failed")))
        .values(status="processed", processed_at=clock.now())
    )
    if claimed.rowcount == 0:
        db.session.rollback()
        return "already processed" if db.session.get(Delivery, delivery_pk) else "no such delivery"
    delivery = db.session.get(Delivery, delivery_pk)
    provider = get_provider(delivery.endpoint.provider)
    outcomes = []
    try:
        payload = parse_payload(delivery.headers, delivery.body)
    except PayloadError as exc:
        outcomes.append(f"not processed: {exc}")
        payload = None
    if provider is None:
        outcomes.append(f"no provider module for {delivery.endpoint.provider!r}")
    elif payload is not None:
        settings = delivery.endpoint.settings or {}
        commands = commands_for(delivery.endpoint)
        for event_type, subject in provider.split(delivery.event_type, payload, settings):
            outcomes.extend(_run_commands(provider, delivery, event_type, subject, commands))
    delivery.outcome = "; ".join(outcomes) or "nothing to process: the delivery carries no items"
    delivery.processing_ms = round((time.perf_counter() - started) * 1000, 3)
    db.session.commit()
    log.info(
        "delivery.processed",
        delivery_pk=delivery.id,
        delivery_id=delivery.delivery_id,
        event_type=delivery.event_type,
        case_id=delivery.case_id,
        outcome=delivery.outcome,
        processing_ms=delivery.processing_ms,
    )
    return delivery.outcome


def _run_commands(
    provider: Provider, delivery: Delivery, event_type: str, subject: dict, commands: list
) -> list[str]:
    selected = matching(commands, event_type, subject)
    if not selected:
        return ["no command matched; recorded only"]
    facts = provider.case_facts(event_type, subject)
    outcomes = []
    for command in selected:
        if command.action == "ignore":
            outcomes.append(f"{command.name}: ignored")
            continue
        if command.action == "forward":
            from app.outbound.service import forward_delivery

            outcome = forward_delivery(delivery, command.extra.get("subscription", ""))
            outcomes.append(f"{command.name}: {outcome}")
            continue
        rendered = replace(
            facts,
            title=render(command.title_template, subject, event_type) or facts.title,
            summary=render(command.timeline_template, subject, event_type) or facts.summary,
        )
        _case, outcome = ACTIONS[command.action](rendered, delivery)
        outcomes.append(f"{command.name}: {outcome}")
    return outcomes


def mark_failed(
    delivery_pk: str, error: BaseException, retry_schedule: tuple[float, ...] = ()
) -> None:
    """Record that processing raised, so the deliveries log shows it, and when the inbox
    tries again: ``retry_schedule[n]`` seconds after the n+1-th failure; after the last,
    it stays ``failed`` until someone replays it."""
    db.session.rollback()
    attempts = (
        db.session.scalar(db.select(Delivery.attempts).where(Delivery.id == delivery_pk)) or 0
    ) + 1
    retry_in = retry_schedule[attempts - 1] if attempts <= len(retry_schedule) else None
    db.session.execute(
        db.update(Delivery)
        .where(Delivery.id == delivery_pk, Delivery.status != "processed")
        .values(
            status="failed",
            attempts=attempts,
            next_attempt_at=clock.now() + timedelta(seconds=retry_in) if retry_in else None,
            outcome=f"failed: {error.__class__.__name__}: {error}"[:2000],
        )
    )
    db.session.commit()
    log.warning("delivery.failed", delivery_pk=delivery_pk, attempts=attempts,
                retry_in=retry_in, error=f"{error.__class__.__name__}: {error}"[:500])  # fmt: skip
