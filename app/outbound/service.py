"""Subscriptions: validating, saving, rotating, matching, and queueing their messages.

Domain rules live here; routes, the API, the CLI and config sync call these functions.
Errors are ``SubscriptionError(status, error, detail)`` (the API answers them as JSON).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from cryptography.fernet import InvalidToken
from flask import current_app

from app import clock
from app.errors import DomainError
from app.extensions import db
from app.ids import new_id
from app.net import UnsafeURL, check_url
from app.outbound.models import OutboundMessage, Subscription
from app.tasks import Task, TaskAttempt, create_task
from app.tasks.models import FAILED, UNFINISHED
from app.webhooks.secrets import decrypt, encrypt

SEND = "outbound.send"
#: How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)
_PATTERN = re.compile(r"^[A-Za-z0-9_.:*-]{1,100}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,100}$")
#: Headers a subscription may not set: the signature and transport are ours.
RESERVED_HEADERS = {
    "host",
    "content-type",
    "content-length",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "transfer-encoding",
    "connection",
}
FIELDS = ("url", "event_types", "description", "endpoint_id", "provider", "headers", "enabled")


class SubscriptionError(DomainError):
    """A subscription cannot be saved as asked: HTTP ``status``, ``error`` slug, ``detail``."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail, status=status, error=error, field=field)


def generate_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(secret: Any) -> str:
    """``secret`` if it is a usable Standard Webhooks secret, else ``SubscriptionError``."""
    if not isinstance(secret, str):
        raise SubscriptionError(422, "invalid_secret", "the secret is a string: 'whsec_…'")
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        key = b""
    if not secret.startswith("whsec_") or len(key) < 16:
        raise SubscriptionError(
            422, "invalid_secret", "a secret is 'whsec_' + base64 of 16-64 random bytes"
        )
    return secret


def allow_list() -> str:
    return current_app.config.get("OUTBOUND_ALLOW", "")


def check_destination(url: Any) -> str:
    """``url`` if it may receive messages; 422 ``unsafe_url`` naming the address class."""
    if not isinstance(url, str) or not url.strip():
        raise SubscriptionError(422, "invalid_url", "give the receiver's http(s) URL")
    url = url.strip()
    if len(url) > 2000:
        raise SubscriptionError(422, "invalid_url", "the URL is longer than 2,000 characters")
    try:
        check_url(url, allow_list())
    except UnsafeURL as exc:
        error = "invalid_url" if exc.reason == "invalid" else "unsafe_url"
        raise SubscriptionError(422, error, str(exc)) from None
    return url


def _event_types(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SubscriptionError(
            422, "invalid_event_types", "give a list of event type patterns, e.g. ['case.*']"
        )
    for pattern in value:
        if not _PATTERN.match(pattern):
            raise SubscriptionError(
                422,
                "invalid_event_types",
                f"{pattern[:100]!r} is not an event type pattern (letters, digits, . _ : - *)",
            )
    return list(dict.fromkeys(value))


def _headers(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > 20:
        raise SubscriptionError(422, "invalid_headers", "headers are an object of ≤ 20 names")
    for name, header_value in value.items():
        if not _HEADER.match(str(name)) or not isinstance(header_value, str):
            raise SubscriptionError(422, "invalid_headers", f"header {name!r} is not valid")
        if name.lower() in RESERVED_HEADERS or "\n" in header_value or "\r" in header_value:
            raise SubscriptionError(422, "invalid_headers", f"header {name!r} cannot be set")
    return {str(k): v for k, v in value.items()}


def _optional_text(value: Any, field: str, limit: int) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise SubscriptionError(422, f"invalid_{field}", f"{field} is a string ≤ {limit} long")
    return value.strip()


def apply_fields(subscription: Subscription, data: dict) -> None:
    """Validate and set the editable fields present in ``data`` (see ``FIELDS``)."""
    if "url" in data:
        subscription.url = check_destination(data["url"])
    if "event_types" in data:
        subscription.event_types = _event_types(data["event_types"])
    if "description" in data:
        subscription.description = _optional_text(data["description"], "description", 2000) or ""
    if "endpoint_id" in data:
        subscription.endpoint_id = _optional_text(data["endpoint_id"], "endpoint_id", 26)
    if "provider" in data:
        subscription.provider = _optional_text(data["provider"], "provider", 32)
    if "headers" in data:
        subscription.headers = _headers(data["headers"])
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise SubscriptionError(422, "invalid_enabled", "enabled is true or false")
        set_enabled(subscription, data["enabled"])
    subscription.updated_at = clock.now()


def create_subscription(data: dict) -> tuple[Subscription, str]:
    """Create from ``{"url", "event_types", "description"?, "secret"?, "endpoint_id"?,
    "provider"?, "headers"?}``; returns it (flushed, uncommitted) and its clear secret."""
    if "url" not in data or "event_types" not in data:
        raise SubscriptionError(422, "missing_field", "give 'url' and 'event_types'")
    subscription = Subscription(
        event_types=[], headers={}, description="", enabled=True, consecutive_failures=0
    )
    apply_fields(subscription, {k: v for k, v in data.items() if k != "enabled"})
    secret = check_secret(data["secret"]) if data.get("secret") else generate_secret()
    subscription.secret_encrypted = encrypt(secret)
    db.session.add(subscription)
    db.session.flush()
    return subscription, secret


def set_enabled(subscription: Subscription, enabled: bool, reason: str | None = None) -> None:
    """Enable (clearing the failure record) or disable with ``reason``."""
    if enabled:
        subscription.enabled, subscription.disabled_reason = True, None
        subscription.disabled_at, subscription.failing_since = None, None
        subscription.consecutive_failures = 0
    elif subscription.enabled or reason:
        subscription.enabled = False
        subscription.disabled_reason = reason or "disabled by hand"
        subscription.disabled_at = clock.now()


def rotate_secret(subscription: Subscription, secret: str | None = None) -> str:
    """A new secret; the current one keeps signing (a second signature) for 24 hours."""
    new = check_secret(secret) if secret else generate_secret()
    if subscription.secret_encrypted:
        subscription.previous_secret_encrypted = subscription.secret_encrypted
        subscription.previous_secret_until = clock.now() + ROTATION_OVERLAP
    subscription.secret_encrypted, subscription.secret_env = encrypt(new), None
    subscription.updated_at = clock.now()
    return new


class SecretUnavailable(Exception):
    """The subscription's secret cannot be read (env var unset, or the key changed)."""


def signing_secrets(subscription: Subscription, now: datetime | None = None) -> list[str]:
    """The secrets that sign a message now: the current one, and the previous one while a
    rotation's overlap lasts. ``SecretUnavailable`` when the current one cannot be read."""
    now = now or clock.now()
    if subscription.secret_env:
        value = os.environ.get(subscription.secret_env)
        if not value:
            raise SecretUnavailable(f"${subscription.secret_env} is not set in this process")
        found = [value]
    else:
        try:
            found = [decrypt(subscription.secret_encrypted or "")]
        except InvalidToken:
            raise SecretUnavailable("the secret cannot be decrypted; rotate it") from None
    until = subscription.previous_secret_until
    if subscription.previous_secret_encrypted and until and _aware(until) > now:
        with contextlib.suppress(InvalidToken):  # a stale previous secret just stops signing
            found.append(decrypt(subscription.previous_secret_encrypted))
    return found


def _aware(moment: datetime) -> datetime:
    from app.templating import as_utc

    return as_utc(moment)


def wants(subscription: Subscription, event_type: str, case: Any = None) -> bool:
    """Whether ``subscription`` takes an event of ``event_type`` about ``case``."""
    if not subscription.enabled:
        return False
    if not any(fnmatchcase(event_type, p) for p in subscription.event_types or ()):
        return False
    if subscription.endpoint_id and getattr(case, "endpoint_id", None) != subscription.endpoint_id:
        return False
    return not (subscription.provider and getattr(case, "provider", None) != subscription.provider)


def retry_schedule() -> tuple[float, ...]:
    """Seconds before each retry, from ``OUTBOUND_RETRY_SCHEDULE`` ("5,300,...")."""
    value = current_app.config.get("OUTBOUND_RETRY_SCHEDULE", "")
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return tuple(float(v) for v in value)


def enqueue(
    subscription: Subscription,
    event_type: str,
    *,
    event_id: str | None = None,
    delivery_pk: str | None = None,
    replay_of: str | None = None,
) -> OutboundMessage:
    """Queue one message of ``event_type`` to ``subscription``: the case event
    ``event_id``, the forwarded delivery ``delivery_pk``, or (neither) a test ping. Added
    to the session; the caller commits."""
    message = OutboundMessage(
        id=new_id(),
        subscription_id=subscription.id,
        event_id=event_id,
        delivery_pk=delivery_pk,
        event_type=event_type,
        replay_of=replay_of,
        created_at=clock.now(),
    )
    db.session.add(message)
    about = f"event:{message.event_id}" if message.event_id else f"message:{message.id}"
    task = create_task(
        SEND,
        f"subscription:{subscription.id}:{about}",
        {"message_id": message.id},
        dedup=False,
        # One at a time per subscription: in event order, and a slow receiver holds up
        # only its own messages.
        concurrency_key=f"outbound:{subscription.id}",
    )
    task.max_attempts = len(retry_schedule()) + 1
    message.task_id = task.id
    return message


def forward_delivery(delivery: Any, subscription_id: str) -> str:
    """The ``forward`` command action: send ``delivery``'s case events so far to the
    subscription ``subscription_id`` whatever its event filter (put it after the command
    that opens or updates the case), or the delivery itself (``delivery.forwarded``) when it
    changed no case. Returns the outcome for the deliveries log; queued, not committed."""
    from app.events.models import CaseEvent

    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None:
        return f"not forwarded: there is no subscription {subscription_id}"
    if not subscription.enabled:
        return f"not forwarded: subscription {subscription_id} is disabled"
    db.session.flush()
    events = db.session.scalars(
        db.select(CaseEvent)
        .where(CaseEvent.delivery_pk == delivery.id)
        .order_by(CaseEvent.created_at, CaseEvent.id)
    ).all()
    if not events:
        enqueue(subscription, "delivery.forwarded", delivery_pk=delivery.id)
        return f"forwarded the delivery to subscription {subscription_id}"
    queued = set(
        db.session.scalars(
            db.select(OutboundMessage.event_id).where(
                OutboundMessage.subscription_id == subscription.id,
                OutboundMessage.event_id.in_([e.id for e in events]),
            )
        )
    )
    fresh = [e for e in events if e.id not in queued]  # its filter may have queued them already
    for event in fresh:
        enqueue(subscription, event.type, event_id=event.id)
    return f"forwarded {len(events)} case event(s) to subscription {subscription_id}"


def parse_since(value: object) -> datetime:
    """An ISO 8601 time (naive means UTC); 422 ``invalid_since`` otherwise."""
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise SubscriptionError(422, "invalid_since", "since is an ISO 8601 time") from None
    return _aware(moment)


def replay(
    subscription: Subscription, *, event_id: str | None = None, since: datetime | None = None
) -> list[OutboundMessage]:
    """Send again: the message(s) for ``event_id``'s event, or every message whose last try
    failed since ``since``. New messages (and tasks) with the same ``webhook-id``."""
    query = db.select(OutboundMessage).where(OutboundMessage.subscription_id == subscription.id)
    if event_id is not None:
        query = query.where(
            (OutboundMessage.event_id == event_id) | (OutboundMessage.id == event_id)
        ).limit(1)
    elif since is not None:
        query = query.join(Task, Task.id == OutboundMessage.task_id).where(
            Task.status == FAILED, OutboundMessage.created_at >= since
        )
    else:
        raise SubscriptionError(422, "missing_field", "give 'event_id' or 'since'")
    originals = db.session.scalars(query.order_by(OutboundMessage.created_at)).all()
    if event_id is not None and not originals:
        raise SubscriptionError(404, "not_found", f"no message for event {event_id}")
    seen: set[str] = set()
    replayed = []
    for original in originals:
        if original.webhook_id in seen:
            continue
        seen.add(original.webhook_id)
        replayed.append(
            enqueue(
                subscription,
                original.event_type,
                event_id=original.event_id,
                delivery_pk=original.delivery_pk,
                replay_of=original.id,
            )
        )
    return replayed


def attempts(
    subscription: Subscription, *, outcome: str | None = None, limit: int = 100
) -> list[tuple[TaskAttempt, OutboundMessage, Task]]:
    """The subscription's attempts, newest first: ``(attempt, message, task)``.
    ``outcome``: "succeeded", "failed" (failed, timed out, lost) or None for all."""
    query = (
        db.select(TaskAttempt, OutboundMessage, Task)
        .join(Task, Task.id == TaskAttempt.task_id)
        .join(OutboundMessage, OutboundMessage.task_id == Task.id)
        .where(OutboundMessage.subscription_id == subscription.id)
    )
    if outcome == "succeeded":
        query = query.where(TaskAttempt.outcome == "succeeded")
    elif outcome == "failed":
        query = query.where(TaskAttempt.outcome.in_(("failed", "timed_out", "lost")))
    query = query.order_by(TaskAttempt.started_at.desc(), TaskAttempt.id.desc()).limit(limit)
    return [tuple(row) for row in db.session.execute(query).all()]


def pending_messages(subscription: Subscription) -> int:
    """How many of the subscription's messages are still to be sent (queued or running)."""
    from sqlalchemy import func

    return db.session.scalar(
        db.select(func.count())
        .select_from(OutboundMessage)
        .join(Task, Task.id == OutboundMessage.task_id)
        .where(OutboundMessage.subscription_id == subscription.id, Task.status.in_(UNFINISHED))
    )


def health(subscription: Subscription) -> dict:
    """``{"state", "last_attempt_at", "last_status_code", "last_error", "success_rate",
    "attempts"}`` over the last 100 attempts; state is "healthy", "failing", "disabled"."""
    recent = attempts(subscription, limit=100)
    finished = [a for a, _m, _t in recent if a.outcome != "running"]
    succeeded = sum(1 for a in finished if a.outcome == "succeeded")
    if not subscription.enabled:
        state = "disabled"
    elif subscription.failing_since is not None:
        state = "failing"
    else:
        state = "healthy"
    return {
        "state": state,
        "last_attempt_at": subscription.last_attempt_at,
        "last_status_code": subscription.last_status_code,
        "last_error": subscription.last_error,
        "success_rate": round(succeeded / len(finished), 3) if finished else None,
        "attempts": len(finished),
    }


def subscription_dict(subscription: Subscription) -> dict:
    """The subscription as the API shows it (never the secret)."""
    from app.cases.models import _iso

    state = health(subscription)
    return {
        "id": subscription.id,
        "url": subscription.url,
        "event_types": list(subscription.event_types or []),
        "endpoint_id": subscription.endpoint_id,
        "provider": subscription.provider,
        "description": subscription.description,
        "headers": dict(subscription.headers or {}),
        "enabled": subscription.enabled,
        "disabled_reason": subscription.disabled_reason,
        "disabled_at": _iso(subscription.disabled_at),
        "source": subscription.source,
        "secret": {
            "env": subscription.secret_env,
            "rotating_until": _iso(subscription.previous_secret_until),
        },
        "health": {**state, "last_attempt_at": _iso(state["last_attempt_at"])},
        "consecutive_failures": subscription.consecutive_failures,
        "failing_since": _iso(subscription.failing_since),
        "created_at": _iso(subscription.created_at),
        "updated_at": _iso(subscription.updated_at),
    }
