"""Sending one message (task kind ``outbound.send``): Standard Webhooks, signed, pinned to
the address the SSRF guard resolved, with Svix's retry policy.

Success is a 2xx answer. 3xx (redirects are not followed), 4xx, 5xx, timeouts and refused
addresses fail the attempt; 429 and 503 wait for their ``Retry-After``; 410 disables the
subscription at once. A message that runs out of attempts counts toward disabling the
subscription (``OUTBOUND_DISABLE_AFTER_FAILURES`` in a row, or failing for
``OUTBOUND_DISABLE_AFTER_DAYS``).
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

import httpx
from flask import current_app
from standardwebhooks.webhooks import Webhook

from app import clock
from app.cases.models import Case, _iso
from app.events.models import CaseEvent
from app.extensions import db
from app.logs import log
from app.net import UnsafeURL, check_url, pinned_request_args
from app.outbound.models import OutboundMessage, Subscription
from app.outbound.service import (
    SEND,
    SecretUnavailable,
    allow_list,
    retry_schedule,
    set_enabled,
    signing_secrets,
)
from app.tasks import AttemptFailed, Recorded, Task, task_kind
from app.webhooks.models import Delivery

EXCERPT_BYTES = 1024
#: The longest ``Retry-After`` honoured (seconds); longer ones wait this long.
MAX_RETRY_AFTER = 24 * 3600

try:
    USER_AGENT = f"Casehook-Webhooks/{version('casehook')}"
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    USER_AGENT = "Casehook-Webhooks/dev"

_client: httpx.Client | None = None


def client() -> httpx.Client:
    """One connection pool per process (keep-alive to busy receivers); no proxies from the
    environment, no redirects."""
    global _client
    if _client is None:
        _client = httpx.Client(
            follow_redirects=False, trust_env=False, limits=httpx.Limits(max_connections=50)
        )
    return _client


def message_body(message: OutboundMessage) -> dict:
    """``{"type", "timestamp", "data"}``: data is ``{"event", "case"}`` for a case event,
    ``{"delivery", "payload"}`` for a forwarded delivery, ``{"subscription_id"}`` for a
    test ping."""
    if message.event_id:
        event = db.session.get(CaseEvent, message.event_id)
        case = db.session.get(Case, event.case_id) if event else None
        data = {
            "event": event.to_dict() if event else None,
            "case": case.to_dict() if case else None,
        }
        timestamp = event.created_at if event else message.created_at
    elif message.delivery_pk:
        delivery = db.session.get(Delivery, message.delivery_pk)
        data = {"delivery": _delivery_dict(delivery), "payload": _payload(delivery)}
        timestamp = delivery.received_at if delivery else message.created_at
    else:
        data = {"subscription_id": message.subscription_id, "message": "A test event from Casehook"}
        timestamp = message.created_at
    return {"type": message.event_type, "timestamp": _iso(timestamp), "data": data}


def _delivery_dict(delivery: Delivery | None) -> dict | None:
    if delivery is None:
        return None
    return {
        "id": delivery.id,
        "delivery_id": delivery.delivery_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "case_id": delivery.case_id,
        "received_at": _iso(delivery.received_at),
    }


def _payload(delivery: Delivery | None) -> Any:
    if delivery is None:
        return None
    try:
        return json.loads(delivery.body)
    except (ValueError, TypeError):
        return None


def sign(secrets: list[str], webhook_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` header: ``v1,<base64>`` per secret, space-separated."""
    return " ".join(Webhook(secret).sign(webhook_id, at, body) for secret in secrets)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now, or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@task_kind(
    SEND,
    retry=(5, 300, 1800, 7200, 18000, 36000, 36000),
    timeout=90,
    concurrency=1,
    chain_seconds=2,
)
def send(task: Task) -> Recorded:
    """Send the message ``task.payload["message_id"]`` once (see the module docstring)."""
    message = db.session.get(OutboundMessage, task.payload.get("message_id"))
    if message is None:
        return Recorded({"skipped": "the message is gone"})
    subscription = message.subscription
    if not subscription.enabled:
        raise AttemptFailed(
            f"not sent: the subscription is disabled ({subscription.disabled_reason})", final=True
        )
    now = clock.now()
    body = json.dumps(message_body(message), separators=(",", ":"), default=str)
    try:
        signature = sign(signing_secrets(subscription, now), message.webhook_id, now, body)
    except SecretUnavailable as exc:
        _failed(task, subscription.id, None, f"not sent: {exc}", now)
    headers = {
        **(subscription.headers or {}),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    url, subscription_id, message_id = subscription.url, subscription.id, message.id
    timeout = float(current_app.config.get("OUTBOUND_TIMEOUT_SECONDS", 15))
    db.session.rollback()  # no transaction open while the receiver takes its time
    try:
        target = check_url(url, allow_list())  # again: DNS may have changed since saving
    except UnsafeURL as exc:
        _failed(task, subscription_id, None, f"refused: {exc}", now)
    pinned = pinned_request_args(target)
    started = time.perf_counter()
    try:
        response = client().post(
            pinned["url"],
            content=body.encode(),
            headers={**headers, **pinned["headers"]},
            extensions=pinned["extensions"],
            timeout=timeout,
        )
    except httpx.TimeoutException:
        _failed(task, subscription_id, None, f"timed out after {timeout:g} s", now)
    except httpx.HTTPError as exc:
        _failed(task, subscription_id, None, f"{exc.__class__.__name__}: {exc}", now)
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    excerpt = response.content[:EXCERPT_BYTES].decode("utf-8", "replace")
    status = response.status_code
    log.info(
        "outbound.attempt",
        subscription_id=subscription_id,
        message_id=message_id,
        webhook_id=headers["webhook-id"],
        status=status,
        latency_ms=latency_ms,
    )
    if 200 <= status < 300:
        _succeeded(subscription_id, status, now)
        return Recorded({"status_code": status, "latency_ms": latency_ms}, status, excerpt)
    detail = f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"
    if status == 410:
        _failed(
            task, subscription_id, status, detail, now, disable="the receiver answered 410 Gone"
        )
    if 300 <= status < 400:
        detail = f"HTTP {status} (redirects are not followed; give the final URL)"
    retry_after = None
    if status in (429, 503):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    _failed(task, subscription_id, status, detail, now, retry_after=retry_after)


def _succeeded(subscription_id: str, status: int, now: datetime) -> None:
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is not None:
        subscription.last_attempt_at, subscription.last_status_code = now, status
        subscription.last_error, subscription.failing_since = None, None
        subscription.consecutive_failures = 0


def _failed(
    task: Task,
    subscription_id: str,
    status: int | None,
    detail: str,
    now: datetime,
    *,
    retry_after: float | None = None,
    disable: str | None = None,
) -> NoReturn:
    """Record the failure on the subscription (committed now: the runner rolls back what a
    failing handler added) and raise ``AttemptFailed`` with the next retry's delay."""
    subscription = db.session.get(Subscription, subscription_id)
    final = disable is not None or task.attempts >= task.max_attempts
    if subscription is not None:
        subscription.last_attempt_at, subscription.last_status_code = now, status
        subscription.last_error = detail[:2000]
        subscription.failing_since = subscription.failing_since or now
        if final:
            subscription.consecutive_failures += 1
        disable = disable or _sustained_failure(subscription, now)
        if disable and subscription.enabled:
            set_enabled(subscription, False, disable)
            log.warning(
                "outbound.subscription_disabled", subscription_id=subscription_id, reason=disable
            )
        db.session.commit()
    if retry_after is None and not final:
        schedule = retry_schedule() or (60.0,)
        retry_after = schedule[min(task.attempts, len(schedule)) - 1] * random.uniform(0.9, 1.1)
    raise AttemptFailed(
        detail, status_code=status, retry_after=retry_after, final=bool(disable) or final
    )


def _sustained_failure(subscription: Subscription, now: datetime) -> str | None:
    config = current_app.config
    limit = int(config.get("OUTBOUND_DISABLE_AFTER_FAILURES") or 0)
    if limit and subscription.consecutive_failures >= limit:
        return f"{subscription.consecutive_failures} messages in a row failed"
    days = float(config.get("OUTBOUND_DISABLE_AFTER_DAYS") or 0)
    since = subscription.failing_since
    if days and since and now - _utc(since) >= timedelta(days=days):
        return f"failing since {_iso(since)} ({days:g} days)"
    return None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
