"""``/api/subscriptions``: outbound webhook subscriptions, their attempts and replays.

Reads need the viewer role, changes admin. The secret appears only in the answers to
``POST /api/subscriptions`` and ``.../rotate-secret``. Errors are ``{"error", "detail"}``;
an unsafe URL is 422 ``unsafe_url`` whose detail names the address class ("loopback",
"private", "link-local", "cgnat", "multicast", "unspecified", "metadata").
"""

from __future__ import annotations

from flask import jsonify, request

from app.accounts.auth import require_role
from app.api import bp
from app.api.common import json_body
from app.extensions import db
from app.outbound import service
from app.outbound.models import Subscription
from app.outbound.service import SubscriptionError

CREATE_FIELDS = {
    "url",
    "event_types",
    "description",
    "secret",
    "endpoint_id",
    "provider",
    "headers",
}


def _error(exc: SubscriptionError):
    return jsonify(error=exc.error, detail=exc.detail), exc.status


def _subscription(subscription_id: str) -> Subscription:
    return db.get_or_404(
        Subscription, subscription_id, description=f"there is no subscription {subscription_id}"
    )


def _only(body: dict, allowed: set[str] | tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise SubscriptionError(
            400,
            "invalid_field",
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
        )


def _config_owned(subscription: Subscription) -> None:
    if subscription.source == "config":
        raise SubscriptionError(
            409,
            "config_managed",
            f"subscription {subscription.id} is "
            f"declared in {subscription.config_file}; change it there",
        )


@bp.get("/subscriptions")
@require_role("viewer")
def list_subscriptions():
    """``{"subscriptions": [subscription...]}``, newest first (see ``subscription_dict``)."""
    rows = db.session.scalars(db.select(Subscription).order_by(Subscription.created_at.desc()))
    return jsonify(subscriptions=[service.subscription_dict(s) for s in rows])


@bp.post("/subscriptions")
@require_role("admin")
def create_subscription():
    """Create from ``{"url", "event_types", "description"?, "secret"?, "endpoint_id"?,
    "provider"?, "headers"?}``; 201 with the subscription and its ``"secret"`` (only here)."""
    body = json_body()
    try:
        _only(body, CREATE_FIELDS)
        subscription, secret = service.create_subscription(body)
    except SubscriptionError as exc:
        db.session.rollback()
        return _error(exc)
    db.session.commit()
    return jsonify({**service.subscription_dict(subscription), "secret": secret}), 201


@bp.get("/subscriptions/<subscription_id>")
@require_role("viewer")
def get_subscription(subscription_id: str):
    return jsonify(service.subscription_dict(_subscription(subscription_id)))


@bp.patch("/subscriptions/<subscription_id>")
@require_role("admin")
def patch_subscription(subscription_id: str):
    """Change any of ``url``, ``event_types``, ``description``, ``endpoint_id``,
    ``provider``, ``headers``, ``enabled``; the secret changes with ``rotate-secret``."""
    subscription = _subscription(subscription_id)
    body = json_body()
    try:
        _config_owned(subscription)
        _only(body, service.FIELDS)
        service.apply_fields(subscription, body)
    except SubscriptionError as exc:
        db.session.rollback()
        return _error(exc)
    db.session.commit()
    return jsonify(service.subscription_dict(subscription))


@bp.delete("/subscriptions/<subscription_id>")
@require_role("admin")
def delete_subscription(subscription_id: str):
    subscription = _subscription(subscription_id)
    try:
        _config_owned(subscription)
    except SubscriptionError as exc:
        return _error(exc)
    db.session.delete(subscription)
    db.session.commit()
    return "", 204


@bp.post("/subscriptions/<subscription_id>/rotate-secret")
@require_role("admin")
def rotate_subscription_secret(subscription_id: str):
    """A new secret (``{"secret"?}`` to choose it); the old one signs too for 24 hours."""
    subscription = _subscription(subscription_id)
    body = request.get_json(silent=True) or {}
    try:
        _config_owned(subscription)
        secret = service.rotate_secret(subscription, body.get("secret"))
    except SubscriptionError as exc:
        return _error(exc)
    db.session.commit()
    return jsonify({**service.subscription_dict(subscription), "secret": secret})


@bp.post("/subscriptions/<subscription_id>/test")
@require_role("admin")
def test_subscription(subscription_id: str):
    """Queue a ``test.ping`` message; 202 with ``{"message_id", "task_id"}``."""
    message = service.enqueue(_subscription(subscription_id), "test.ping")
    db.session.commit()
    return jsonify(message_id=message.id, task_id=message.task_id), 202


@bp.get("/subscriptions/<subscription_id>/attempts")
@require_role("viewer")
def subscription_attempts(subscription_id: str):
    """``{"attempts": [...]}`` newest first; ``?outcome=succeeded|failed``, ``?limit`` ≤ 500.
    An attempt: ``{"message_id", "webhook_id", "event_id", "event_type", "attempt",
    "started_at", "outcome", "status_code", "latency_ms", "response", "message_status",
    "next_retry_at"}``."""
    subscription = _subscription(subscription_id)
    outcome = request.args.get("outcome") or None
    if outcome not in (None, "succeeded", "failed"):
        return jsonify(error="invalid_outcome", detail="outcome is succeeded or failed"), 400
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 500)
    except ValueError:
        return jsonify(error="invalid_limit", detail="limit is a whole number"), 400
    rows = service.attempts(subscription, outcome=outcome, limit=limit)
    return jsonify(attempts=[service.attempt_dict(*row) for row in rows])


@bp.post("/subscriptions/<subscription_id>/replay")
@require_role("admin")
def replay_subscription(subscription_id: str):
    """Send again ``{"event_id"}`` (one message) or ``{"since": ISO 8601}`` (every message
    that failed since then); 202 with ``{"replayed": n, "message_ids": [...]}``."""
    subscription = _subscription(subscription_id)
    body = json_body()
    try:
        _only(body, {"event_id", "since"})
        since = service.parse_since(body["since"]) if body.get("since") else None
        replayed = service.replay(subscription, event_id=body.get("event_id"), since=since)
    except SubscriptionError as exc:
        db.session.rollback()
        return _error(exc)
    db.session.commit()
    return jsonify(replayed=len(replayed), message_ids=[m.id for m in replayed]), 202
