"""Processing a stored delivery: match its endpoint's commands, run their actions.

This is step 3 of SPEC §3. It is idempotent: the first statement claims the delivery
(``received``/``failed`` → ``processed``) and everything else happens in that transaction,
so a second run, or a concurrent one, changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import timedelta

from flask import current_app
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import clock, logs, metrics
from app.cases import service
from app.events.context import caused_by
from app.extensions import db
from app.logs import log
from app.webhooks import mentions
from app.webhooks.command_store import commands_for
from app.webhooks.commands import Command, matching, render
from app.webhooks.models import CommandRecord, Delivery, Endpoint
from app.webhooks.payloads import parse_payload
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import PayloadError, Provider, case_source

ACTIONS = {
    "open_case": service.open_case,
    "update_case": service.update_case,
    "close_case": service.close_case,
}


#: How long a worker trusts what it read about an endpoint and its commands (seconds), as
#: ingest does (``ingest.ENDPOINT_CACHE_SECONDS``). Changes made in this process are seen at
#: once; other processes' changes within this. Reading them again for every delivery was a
#: third of the statements per delivery.
ENDPOINT_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class EndpointSetup:
    """What processing needs of an endpoint: its provider's name, settings and commands."""

    provider: str
    settings: dict
    commands: list[Command]


_setups: dict[tuple[str, str], tuple[float, EndpointSetup]] = {}


def endpoint_setup(delivery: Delivery) -> EndpointSetup:
    """The delivery's endpoint's provider, settings and commands in force, cached per process
    for ``ENDPOINT_CACHE_SECONDS``."""
    key = (current_app.config["SQLALCHEMY_DATABASE_URI"], delivery.endpoint_id)
    now = time.monotonic()
    cached = _setups.get(key)
    if cached and now - cached[0] < ENDPOINT_CACHE_SECONDS:
        return cached[1]
    endpoint = delivery.endpoint
    setup = EndpointSetup(endpoint.provider, dict(endpoint.settings or {}), commands_for(endpoint))
    if len(_setups) > 1000:
        _setups.clear()
    _setups[key] = (now, setup)
    return setup


def forget_setups() -> None:
    """Drop every cached endpoint setup in this process."""
    _setups.clear()


@event.listens_for(Endpoint, "after_update")
@event.listens_for(Endpoint, "after_delete")
@event.listens_for(CommandRecord, "after_insert")
@event.listens_for(CommandRecord, "after_update")
@event.listens_for(CommandRecord, "after_delete")
def _forget(_mapper, _connection, _target) -> None:
    forget_setups()


@event.listens_for(Session, "after_bulk_update")
@event.listens_for(Session, "after_bulk_delete")
def _forget_bulk(context) -> None:
    # ``db.delete(CommandRecord)...`` (config sync, endpoint removal) skips the mapper events.
    if context.mapper is not None and context.mapper.class_ in (Endpoint, CommandRecord):
        forget_setups()


def process_delivery(
    delivery_pk: str,
    attempts: int = 3,
    after_commit: list | None = None,
    claimed: Delivery | None = None,
) -> str:
    """Process the stored delivery ``delivery_pk`` (``Delivery.id``) and commit.

    Returns the outcome ("opened a case", "no command matched", "already processed", ...).
    Two workers opening the same new case race on the dedup key's unique constraint; the
    loser rolls back and tries again, then finds the winner's case.

    With ``after_commit`` (a list), ``claimed`` is the delivery ``process_batch`` already
    claimed (None: it was not there to claim); it neither commits nor retries: the caller
    commits the batch, then calls what was appended (this delivery's log line and metrics);
    any error propagates.
    """
    if after_commit is not None:
        with caused_by(delivery_pk):
            return _process_once(delivery_pk, after_commit, claimed)
    for attempt in range(attempts):
        try:
            with caused_by(delivery_pk):  # its events share the delivery as their correlation
                return _process_once(delivery_pk)
        except IntegrityError:
            db.session.rollback()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


#: Deliveries ``process_batch`` puts in one transaction, adapted after each batch to about
#: its ``max_seconds`` of work.
_batch_size = 10


def process_batch(
    delivery_pks: list[str], retry_schedule: tuple[float, ...] = (), max_seconds: float = 0.2
) -> int:
    """Process the first deliveries of ``delivery_pks``, in order, in one transaction;
    returns how many (about ``max_seconds`` of work: the rest are the caller's to pass
    again).

    One claim statement and one commit for many deliveries, and the subscriptions read and
    the events' stamp once per batch. If any delivery raises, the whole batch is rolled
    back and processed again one delivery per transaction (``process_delivery``), the
    failing one marked failed (``mark_failed``): one bad delivery does not hold up its
    neighbours, and nothing is written twice. Deliveries of one case keep their order.
    """
    global _batch_size
    chunk, after = delivery_pks[:_batch_size], []
    started = time.perf_counter()
    try:
        claimed = _claim(chunk)
        _prefetch_cases(claimed.values())
        for delivery_pk in chunk:
            with logs.bound(delivery_pk=delivery_pk, correlation_id=delivery_pk):
                process_delivery(delivery_pk, after_commit=after, claimed=claimed.get(delivery_pk))
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.warning("delivery.batch_redone", deliveries=len(chunk), error=repr(exc)[:500])
        _batch_size = 1  # grows back after the next batch
        for delivery_pk in chunk:
            process_alone(delivery_pk, retry_schedule)
        return len(chunk)
    each = (time.perf_counter() - started) / len(chunk)
    _batch_size = max(INBOX_BATCH_FLOOR, min(INBOX_BATCH_LIMIT, int(max_seconds / max(each, 1e-6))))
    for done in after:
        done()
    return len(chunk)


#: The most and the fewest deliveries in one transaction (the fewest, but for the batch
#: after one that failed: on a busy machine a commit per delivery would only slow it more).
INBOX_BATCH_LIMIT = 100
INBOX_BATCH_FLOOR = 10


def _claim(delivery_pks: list[str]) -> dict[str, Delivery]:
    """Claim the deliveries still waiting among ``delivery_pks`` (``received``/``failed``
    → ``processed``) and read them, in one ``UPDATE … RETURNING`` (Postgres, SQLite ≥
    3.35); ``{id: delivery}``."""
    rows = db.session.scalars(
        db.update(Delivery)
        .where(Delivery.id.in_(delivery_pks), Delivery.status.in_(("received", "failed")))
        .values(status="processed", processed_at=clock.now())
        .returning(Delivery)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).all()
    return {row.id: row for row in rows}


def _parsed(delivery: Delivery) -> tuple[dict | None, PayloadError | None]:
    """``(payload, None)`` or ``(None, why not)``: the body parsed once per loaded delivery
    (the batch's case lookup and the processing both need it; a body is never edited)."""
    cached = delivery.__dict__.get("_casehook_parsed")
    if cached is None or cached[0] is not delivery.body:
        try:
            result = (parse_payload(delivery.headers, delivery.body), None)
        except PayloadError as exc:
            result = (None, exc)
        cached = delivery.__dict__["_casehook_parsed"] = (delivery.body, result)
    return cached[1]


def _prefetch_cases(deliveries) -> None:
    """Read the cases the batch's deliveries name in one query (``service.prefetch_cases``)
    instead of one per delivery. Only a warm-up: a delivery whose facts cannot be worked
    out here is left to its own processing, which says what is wrong."""
    keys: dict[str, set[str]] = {}
    for delivery in deliveries:
        try:
            setup = endpoint_setup(delivery)
            provider = get_provider(setup.provider)
            payload = _parsed(delivery)[0]
            if provider is None or payload is None:
                continue
            for event_type, subject in provider.split(delivery.event_type, payload, setup.settings):
                key = provider.case_facts(event_type, subject).dedup_key
                if key:
                    keys.setdefault(delivery.endpoint_id, set()).add(key)
        except Exception:  # see the docstring
            continue
    if keys:
        service.prefetch_cases(keys)


def process_alone(delivery_pk: str, retry_schedule: tuple[float, ...] = ()) -> None:
    """Process one delivery in its own transaction; a failure is recorded on the delivery
    (retried per ``retry_schedule``) rather than raised."""
    # Every log line about this delivery, down to the cases it touches, names it; what
    # one delivery causes shares its id as the correlation id.
    with logs.bound(delivery_pk=delivery_pk, correlation_id=delivery_pk):
        try:
            process_delivery(delivery_pk)
        except Exception as exc:  # one bad delivery must not hold up the rest
            mark_failed(delivery_pk, exc, retry_schedule)


def _process_once(
    delivery_pk: str, after_commit: list | None = None, claimed: Delivery | None = None
) -> str:
    started = time.perf_counter()
    delivery = claimed if after_commit is not None else _claim([delivery_pk]).get(delivery_pk)
    if delivery is None:
        if after_commit is None:
            db.session.rollback()
        exists = db.session.scalar(db.select(Delivery.id).where(Delivery.id == delivery_pk))
        return "already processed" if exists else "no such delivery"
    setup = endpoint_setup(delivery)
    provider_name = setup.provider
    provider = get_provider(provider_name)
    outcomes = []
    payload, unreadable = _parsed(delivery)
    if unreadable is not None:
        outcomes.append(f"not processed: {unreadable}")
    if provider is None:
        outcomes.append(f"no provider module for {provider_name!r}")
    elif payload is not None:
        for event_type, subject in provider.split(delivery.event_type, payload, setup.settings):
            outcomes.extend(
                _run_commands(
                    provider, delivery, event_type, subject, setup.commands, setup.settings
                )
            )
    delivery.outcome = "; ".join(outcomes) or "nothing to process: the delivery carries no items"
    seconds = time.perf_counter() - started
    delivery.processing_ms = round(seconds * 1000, 3)
    # Read before the commit expires the row: reading it after would load it again, body
    # and all, just to log it.
    logged = {
        "delivery_pk": delivery.id,
        "delivery_id": delivery.delivery_id,
        "event_type": delivery.event_type,
        "case_id": delivery.case_id,
        "outcome": delivery.outcome,
        "processing_ms": delivery.processing_ms,
    }
    readable = payload is not None and provider is not None
    verdict = "processed" if readable else "unprocessable"

    def committed() -> None:
        metrics.delivery_processed(verdict, seconds, provider_name)
        with logs.bound(correlation_id=delivery_pk):
            log.info("delivery.processed", **logged)

    if after_commit is not None:
        after_commit.append(committed)
    else:
        db.session.commit()
        committed()
    return logged["outcome"]


def _run_commands(
    provider: Provider,
    delivery: Delivery,
    event_type: str,
    subject: dict,
    commands: list,
    settings: dict | None = None,
) -> list[str]:
    # A comment addressing Casehook ("@casehook analyze ...") runs the command it names
    # (app/webhooks/mentions.py); other events, and comments that do not, match as usual,
    # minus the commands only a mention may start (agent runs).
    mention = provider.mention(event_type, subject)
    addressed, note = mentions.address(
        mention, settings or {}, commands, event_type, subject, provider.reply_marker
    )
    if addressed is not None:
        selected = [addressed.command]
        subject = {**subject, "mention": addressed.context}
    else:
        usable = [c for c in commands if not mentions.needs_mention(c, mention)]
        selected = matching(usable, event_type, subject)
    if not selected:
        return [note or "no command matched; recorded only"]
    facts = provider.case_facts(event_type, subject)
    target = provider.reply_target(event_type, subject)
    facts = replace(facts, source=case_source(target))
    outcomes = [note] if note else []
    for command in selected:
        if addressed is not None:
            outcomes.append(_mentioned(addressed, delivery, facts, target, event_type, subject))
            continue
        outcomes.append(
            f"{command.name}: {_act(command, delivery, facts, target, event_type, subject)}"
        )
    return outcomes


def _act(
    command, delivery: Delivery, facts, target: dict | None, event_type: str, subject: dict
) -> str:
    """Run one command's action on the delivery; a sentence for the deliveries log."""
    if command.action == "ignore":
        return "ignored"
    if command.action == "comment":
        return _comment(command, delivery, facts, target, event_type, subject)
    if command.action == "forward":
        from app.outbound.service import forward_delivery

        return forward_delivery(delivery, command.extra.get("subscription", ""))
    rendered = _rendered(command, facts, subject, event_type)
    if command.action == "run_agent":
        from app.agents.actions import run_agent_action

        return run_agent_action(command, rendered, delivery, subject, event_type)
    return ACTIONS[command.action](rendered, delivery)[1]


def _rendered(command, facts, subject: dict, event_type: str):
    """The case facts with the command's title and timeline templates applied."""
    return replace(
        facts,
        title=render(command.title_template, subject, event_type) or facts.title,
        summary=render(command.timeline_template, subject, event_type) or facts.summary,
    )


def _mentioned(
    addressed: mentions.Addressed, delivery: Delivery, facts, target: dict | None,
    event_type: str, subject: dict,
) -> str:  # fmt: skip
    """Run the command a mention addressed: an agent run (awaiting approval unless its
    author is trusted) acknowledged at once in the thread (a reaction or a short reply,
    posted by a ``replies.post`` task); other actions only for trusted authors."""
    command, who = addressed.command, addressed.context["author"] or "someone"
    said = f"{command.name} (mention by {who})"
    if command.action != "run_agent" and not addressed.trusted:
        return f"{said}: refused, not a project member"
    if command.action == "ignore":
        return f"{said}: ignore, nothing done"
    if command.action != "run_agent":
        return f"{said}: {_act(command, delivery, facts, target, event_type, subject)}"
    rendered = _rendered(command, facts, subject, event_type)
    from app.agents.actions import run_agent_action
    from app.agents.service import get_agent
    from app.replies.tasks import request_acknowledgement

    if not addressed.trusted:
        command = replace(command, requires_approval=True)
    outcome = run_agent_action(command, rendered, delivery, subject, event_type)
    if get_agent(command.agent) is None:  # nothing will run: nothing to acknowledge
        return f"{said}: {outcome}"
    acknowledged = request_acknowledgement(
        delivery.endpoint, target, service.find_case(delivery.endpoint_id, facts.dedup_key),
        approval=command.requires_approval, actor=f"mention {command.name}",
        delivery_pk=delivery.id,
    )  # fmt: skip
    return f"{said}: {outcome}" + ("; acknowledged" if acknowledged else "")


def _comment(
    command, delivery: Delivery, facts, target: dict | None, event_type: str, subject: dict
) -> str:
    """The ``comment`` action: ask for the rendered ``reply_template`` to be posted to the
    delivery's source (a ``replies.post`` task in this transaction), on behalf of the case
    with the delivery's dedup key when there is one (its timeline shows the reply)."""
    from app.replies.tasks import request_reply

    if not target:
        return "nothing to reply to (the delivery names no issue, thread or incident)"
    text = render(command.reply_template, subject, event_type)
    if not text:
        return "the reply template rendered empty; nothing posted"
    case = service.find_case(delivery.endpoint_id, facts.dedup_key)
    request_reply(delivery.endpoint, target, text, case=case, actor=f"command {command.name}",
                  origin="command", delivery_pk=delivery.id)  # fmt: skip
    return "reply queued"


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
    metrics.delivery_processed("retrying" if retry_in else "failed")
    log.warning("delivery.failed", delivery_pk=delivery_pk, attempts=attempts,
                retry_in=retry_in, error=f"{error.__class__.__name__}: {error}"[:500])  # fmt: skip
