"""Replies as tasks (kind ``replies.post``).

``request_reply`` adds the task in the caller's transaction (the case page's request, a
delivery's processing), so a reply is asked for exactly when the change that asks for it
commits. The worker runs ``post_reply``: it reads what it needs, ends the transaction, posts
through the provider module (``Provider.reply``, httpx, 15 s timeout), then records in a
short transaction the attempt's HTTP status and answer excerpt and, once it is settled,
``case.replied`` on the case: ``{"outcome": "posted", "url"?, ...}`` or ``{"outcome":
"failed", "error", ...}``.

Failures are retried on ``RETRY`` (seconds), a rate limit waits what the provider asked
(``RetryAfter``); a refusal that cannot change (bad token, unknown issue) fails at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.cases.models import Case
from app.events.record import record_event
from app.extensions import db
from app.tasks import RetryAfter, Task, TaskAttempt, TaskFailed, create_task, task_kind
from app.webhooks import reply_settings
from app.webhooks.models import Endpoint
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import ReplyError, ReplyResult, case_source

POST = "replies.post"
#: Seconds before each retry of a failed reply (so five attempts in all).
RETRY = (10, 60, 300, 1800)
#: The longest reply accepted (GitHub takes 65,536 characters, Slack 40,000).
MAX_TEXT = 20_000
#: Task priority of an acknowledgement (lower runs first): before the run it announces,
#: whatever that command's priority, so that it lands within seconds.
ACK_PRIORITY = -1000
#: Characters of the reply kept in the ``case.replied`` event.
TEXT_EXCERPT = 1000


class ReplyFailed(Exception):
    """One attempt at a reply failed (retried); the message is the provider's answer."""


def subject(case_id: int | None, endpoint_id: str) -> str:
    return f"case:{case_id}" if case_id else f"endpoint:{endpoint_id}"


def request_reply(
    endpoint: Endpoint,
    target: Mapping[str, Any],
    text: str,
    *,
    case: Case | None = None,
    actor: str | None = None,
    origin: str = "console",
    delivery_pk: str | None = None,
    acknowledge: bool = False,
) -> Task:
    """Ask for ``text`` to be posted to ``target`` through ``endpoint``'s provider; the caller
    commits. ``origin``: ``console``, ``api``, ``command`` or ``mention``; ``actor`` who asked
    (an email, or ``command <name>``). ``acknowledge``: a reaction on the triggering item
    where the provider has them (``Provider.acknowledge``), ``text`` otherwise."""
    return create_task(
        POST,
        subject(case.id if case else None, endpoint.id),
        {
            "endpoint_id": endpoint.id,
            "case_id": case.id if case else None,
            "target": dict(target),
            "text": text,
            "actor": actor,
            "origin": origin,
            "delivery_pk": delivery_pk,
            **({"acknowledge": True} if acknowledge else {}),
        },
        priority=ACK_PRIORITY if acknowledge else 30,
        dedup=False,
    )


#: What an acknowledgement says where the provider has no reactions.
ACK_TEXT = "Working on it…"
ACK_APPROVAL_TEXT = "Noted: this waits for a project member to approve it."


def request_acknowledgement(
    endpoint: Endpoint,
    target: Mapping[str, Any] | None,
    case: Case | None,
    *,
    approval: bool = False,
    actor: str | None = None,
    delivery_pk: str | None = None,
) -> Task | None:
    """Acknowledge a mention at once (a 👀 reaction, or a short "working on it" reply), in
    the caller's transaction; None when there is nothing to reply to or the endpoint has
    no reply token (nothing would go through)."""
    if not target or reply_settings.token_state(endpoint.settings) == "none":
        return None
    text = ACK_APPROVAL_TEXT if approval else ACK_TEXT
    return request_reply(endpoint, target, text, case=case, actor=actor, origin="mention",
                         delivery_pk=delivery_pk, acknowledge=True)  # fmt: skip


def pending_replies(case: Case, limit: int = 10) -> list[Task]:
    """The newest reply tasks of ``case`` (any state), newest first."""
    return list(
        db.session.scalars(
            db.select(Task)
            .where(Task.kind == POST, Task.subject == subject(case.id, ""))
            .order_by(Task.created_at.desc(), Task.id.desc())
            .limit(limit)
        )
    )


@task_kind(POST, retry=RETRY, timeout=60)
def post_reply(task: Task) -> dict:
    payload = dict(task.payload or {})
    endpoint = db.session.get(Endpoint, payload.get("endpoint_id") or "")
    provider = get_provider(endpoint.provider) if endpoint is not None else None
    if endpoint is None or provider is None:
        _settle(task, payload, error="the endpoint is gone")
        raise TaskFailed("the endpoint is gone")
    target = payload.get("target") or {}
    try:
        settings = reply_settings.resolve(endpoint, provider, target)
    except reply_settings.ReplyUnavailable as exc:
        _settle(task, payload, error=str(exc))
        raise TaskFailed(str(exc)) from None
    attempt, last = task.attempts, task.attempts >= task.max_attempts
    db.session.rollback()  # no transaction open while the provider answers
    try:
        result = provider.acknowledge(target, settings) if payload.get("acknowledge") else None
        if result is not None:
            payload["text"] = "👀 (a reaction on the comment)"
        else:
            text = str(payload.get("text") or "") + provider.reply_marker
            # An acknowledgement in words must not also react (GitHub reacts to a TRIGGER).
            where = case_source(target) or {} if payload.get("acknowledge") else target
            result = provider.reply(where, text, settings)
    except ReplyError as exc:
        _note_attempt(task.id, attempt, exc.status_code)
        if exc.permanent or last:
            _settle(task, payload, error=exc.detail, status_code=exc.status_code)
            raise TaskFailed(exc.detail) from None
        if exc.retry_after is not None:
            raise RetryAfter(exc.retry_after, exc.detail) from None
        raise ReplyFailed(exc.detail) from None
    _note_attempt(task.id, attempt, result.status_code, result.excerpt, commit=False)
    _settle(task, payload, result=result, commit=False)
    return {"status_code": result.status_code, "url": result.url}


def _note_attempt(
    task_id: str, number: int, status_code: int | None, detail: str | None = None,
    *, commit: bool = True,
) -> None:  # fmt: skip
    """Put the HTTP status (and an answer's excerpt) on attempt ``number`` of the task."""
    attempt = db.session.scalar(
        db.select(TaskAttempt).where(TaskAttempt.task_id == task_id, TaskAttempt.number == number)
    )
    if attempt is None:
        return
    attempt.status_code = status_code
    if detail is not None:
        attempt.detail = detail[:2000]
    if commit:
        db.session.commit()


def _settle(
    task: Task,
    payload: Mapping[str, Any],
    *,
    result: ReplyResult | None = None,
    error: str | None = None,
    status_code: int | None = None,
    commit: bool = True,
) -> None:
    """Write ``case.replied`` on the reply's case (if it has one): posted or failed."""
    case = db.session.get(Case, payload.get("case_id")) if payload.get("case_id") else None
    if case is None:
        if commit:
            db.session.commit()
        return
    endpoint_id = payload.get("endpoint_id")
    endpoint = db.session.get(Endpoint, endpoint_id) if endpoint_id else None
    text = str(payload.get("text") or "")
    event = {
        "outcome": "posted" if result is not None else "failed",
        "text": text[:TEXT_EXCERPT] + ("…" if len(text) > TEXT_EXCERPT else ""),
        "origin": payload.get("origin"),
        "provider": endpoint.provider if endpoint else case.provider,
        "task_id": task.id,
        "attempts": task.attempts,
    }
    if result is not None:
        event.update(status_code=result.status_code, url=result.url)
    else:
        event.update(error=(error or "")[:1000], status_code=status_code)
    record_event(case, "case.replied", actor=payload.get("actor"), payload=event)
    if commit:
        db.session.commit()
