"""``/api/subscriptions``: outbound webhook subscriptions, their attempts and replays.

Reads need the viewer role, changes admin. The secret appears only in the answers to
``POST /api/subscriptions`` and ``.../rotate-secret``. An unsafe URL is 422 ``unsafe_url``
whose detail names the address class ("loopback", "private", "link-local", "cgnat",
"multicast", "unspecified", "metadata").
"""

from __future__ import annotations

from flask import request

from app.accounts.auth import require_role
from app.api import bp
from app.api.schemas.subscriptions import (
    Attempt,
    AttemptList,
    AttemptQuery,
    Subscription,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionPatch,
    SubscriptionReplayBody,
    SubscriptionReplayed,
    SubscriptionSecretBody,
    SubscriptionWithSecret,
    TestQueued,
)
from app.api.spec import operation, parse_body
from app.extensions import db
from app.outbound import models, service
from app.outbound.service import SubscriptionError


def _subscription(subscription_id: str) -> models.Subscription:
    return db.get_or_404(
        models.Subscription,
        subscription_id,
        description=f"there is no subscription {subscription_id}",
    )


def _config_owned(subscription: models.Subscription) -> None:
    if subscription.source == "config":
        raise SubscriptionError(
            409,
            "config_managed",
            f"subscription {subscription.id} is "
            f"declared in {subscription.config_file}; change it there",
        )


@bp.get("/subscriptions")
@require_role("viewer")
@operation(responses={200: SubscriptionList}, tag="subscriptions")
def list_subscriptions() -> SubscriptionList:
    """Every subscription, newest first (never a secret)."""
    rows = db.session.scalars(
        db.select(models.Subscription).order_by(models.Subscription.created_at.desc())
    )
    return SubscriptionList(subscriptions=[Subscription.of(s) for s in rows])


@bp.post("/subscriptions")
@require_role("admin")
@operation(body=SubscriptionCreate, responses={201: SubscriptionWithSecret}, tag="subscriptions")
def create_subscription(body: SubscriptionCreate) -> tuple[SubscriptionWithSecret, int]:
    """Create a subscription; the answer shows its secret, only this once."""
    subscription, secret = service.create_subscription(body.given())
    db.session.commit()
    return SubscriptionWithSecret.of(subscription, secret), 201


@bp.get("/subscriptions/<subscription_id>")
@require_role("viewer")
@operation(responses={200: Subscription}, tag="subscriptions")
def get_subscription(subscription_id: str) -> Subscription:
    """One subscription, with its health."""
    return Subscription.of(_subscription(subscription_id))


@bp.patch("/subscriptions/<subscription_id>")
@require_role("admin")
@operation(body=SubscriptionPatch, responses={200: Subscription}, tag="subscriptions")
def patch_subscription(subscription_id: str, body: SubscriptionPatch) -> Subscription:
    """Change any of the editable fields; the secret changes with ``rotate-secret``."""
    subscription = _subscription(subscription_id)
    _config_owned(subscription)
    service.apply_fields(subscription, body.given())
    db.session.commit()
    return Subscription.of(subscription)


@bp.delete("/subscriptions/<subscription_id>")
@require_role("admin")
@operation(responses={204: None}, tag="subscriptions")
def delete_subscription(subscription_id: str) -> tuple[None, int]:
    """Delete a subscription (its pending messages are dropped)."""
    subscription = _subscription(subscription_id)
    _config_owned(subscription)
    db.session.delete(subscription)
    db.session.commit()
    return None, 204


@bp.post("/subscriptions/<subscription_id>/rotate-secret")
@require_role("admin")
@operation(
    body=SubscriptionSecretBody,
    responses={200: SubscriptionWithSecret},
    tag="subscriptions",
    parse_body_first=False,
)
def rotate_subscription_secret(subscription_id: str) -> SubscriptionWithSecret:
    """A new secret (chosen or generated); the old one signs too for 24 hours.

    The body is optional.
    """
    subscription = _subscription(subscription_id)
    _config_owned(subscription)
    body = parse_body(SubscriptionSecretBody) if request.get_data() else SubscriptionSecretBody()
    secret = service.rotate_secret(subscription, body.secret)
    db.session.commit()
    return SubscriptionWithSecret.of(subscription, secret)


@bp.post("/subscriptions/<subscription_id>/test")
@require_role("admin")
@operation(responses={202: TestQueued}, tag="subscriptions")
def test_subscription(subscription_id: str) -> tuple[TestQueued, int]:
    """Queue a ``test.ping`` message."""
    message = service.enqueue(_subscription(subscription_id), "test.ping")
    db.session.commit()
    return TestQueued(message_id=message.id, task_id=message.task_id), 202


@bp.get("/subscriptions/<subscription_id>/attempts")
@require_role("viewer")
@operation(query=AttemptQuery, responses={200: AttemptList}, tag="subscriptions")
def subscription_attempts(subscription_id: str, query: AttemptQuery) -> AttemptList:
    """Delivery attempts, newest first, optionally only ``succeeded`` or ``failed``."""
    subscription = _subscription(subscription_id)
    rows = service.attempts(subscription, outcome=query.outcome, limit=query.limit)
    return AttemptList(attempts=[Attempt.of(*row) for row in rows])


@bp.post("/subscriptions/<subscription_id>/replay")
@require_role("admin")
@operation(body=SubscriptionReplayBody, responses={202: SubscriptionReplayed}, tag="subscriptions")
def replay_subscription(
    subscription_id: str, body: SubscriptionReplayBody
) -> tuple[SubscriptionReplayed, int]:
    """Send again one message (``event_id``) or every message that failed ``since``."""
    subscription = _subscription(subscription_id)
    since = service.parse_since(body.since) if body.since else None
    replayed = service.replay(subscription, event_id=body.event_id, since=since)
    db.session.commit()
    return SubscriptionReplayed(replayed=len(replayed), message_ids=[m.id for m in replayed]), 202
