"""Console: subscriptions (admins manage, everyone reads) and each one's attempts log.

Plain forms that redirect back (flash says what happened); the attempts log is an htmx
partial that refreshes itself while messages are pending.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from app.accounts.auth import require_role
from app.extensions import db
from app.outbound import bp, service
from app.outbound.models import Subscription
from app.outbound.service import SubscriptionError


def _subscription(subscription_id: str) -> Subscription:
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None:
        abort(404, description=f"there is no subscription {subscription_id}")
    return subscription


def _form_data() -> dict:
    data = {key: request.form.get(key, "").strip() for key in ("url", "description")}
    data["event_types"] = request.form.get("event_types", "").strip()
    return data


@bp.get("/subscriptions")
@require_role("viewer")
def index():
    rows = db.session.scalars(db.select(Subscription).order_by(Subscription.created_at.desc()))
    return render_template(
        "outbound/index.html",
        rows=[(s, service.health(s)) for s in rows],
        values={"event_types": "case.*"},
        errors={},
    )


@bp.post("/subscriptions")
@require_role("admin")
def create():
    data = _form_data()
    try:
        subscription, secret = service.create_subscription(data)
    except SubscriptionError as exc:
        db.session.rollback()
        rows = db.session.scalars(db.select(Subscription).order_by(Subscription.created_at.desc()))
        return render_template(
            "outbound/index.html",
            rows=[(s, service.health(s)) for s in rows],
            values=data,
            errors={"form": exc.detail},
        ), 422
    db.session.commit()
    return _show(subscription, secret=secret)


@bp.get("/subscriptions/<subscription_id>")
@require_role("viewer")
def show(subscription_id: str):
    return _show(_subscription(subscription_id))


def _show(
    subscription: Subscription,
    secret: str | None = None,
    error: str | None = None,
    status: int = 200,
):
    outcome = request.args.get("outcome") or None
    if outcome not in (None, "succeeded", "failed"):
        outcome = None
    return render_template(
        "outbound/show.html",
        subscription=subscription,
        health=service.health(subscription),
        attempts=service.attempts(subscription, outcome=outcome, limit=100),
        pending=service.pending_messages(subscription),
        outcome=outcome,
        secret=secret,
        error=error,
    ), status


@bp.get("/subscriptions/<subscription_id>/attempts")
@require_role("viewer")
def attempts(subscription_id: str):
    """The attempts log partial (``?outcome=succeeded|failed``)."""
    subscription = _subscription(subscription_id)
    outcome = request.args.get("outcome") or None
    if outcome not in (None, "succeeded", "failed"):
        outcome = None
    return render_template(
        "outbound/_attempts.html",
        subscription=subscription,
        attempts=service.attempts(subscription, outcome=outcome, limit=100),
        pending=service.pending_messages(subscription),
        outcome=outcome,
    )


@bp.post("/subscriptions/<subscription_id>")
@require_role("admin")
def edit(subscription_id: str):
    subscription = _subscription(subscription_id)
    if subscription.source == "config":
        return _show(subscription, error="declared in a config file: change it there", status=409)
    try:
        service.apply_fields(subscription, _form_data())
    except SubscriptionError as exc:
        db.session.rollback()
        return _show(_subscription(subscription_id), error=exc.detail, status=422)
    db.session.commit()
    flash("Saved.")
    return redirect(url_for("outbound.show", subscription_id=subscription.id))


@bp.post("/subscriptions/<subscription_id>/enabled")
@require_role("admin")
def set_enabled(subscription_id: str):
    subscription = _subscription(subscription_id)
    enabled = request.form.get("enabled") == "1"
    service.set_enabled(subscription, enabled)
    db.session.commit()
    flash("Enabled." if enabled else "Disabled: no messages are sent until it is enabled.")
    return redirect(url_for("outbound.show", subscription_id=subscription.id))


@bp.post("/subscriptions/<subscription_id>/rotate")
@require_role("admin")
def rotate(subscription_id: str):
    subscription = _subscription(subscription_id)
    if subscription.source == "config":
        return _show(subscription, error="its secret comes from the environment", status=409)
    secret = service.rotate_secret(subscription)
    db.session.commit()
    return _show(subscription, secret=secret)


@bp.post("/subscriptions/<subscription_id>/test")
@require_role("admin")
def send_test(subscription_id: str):
    subscription = _subscription(subscription_id)
    service.enqueue(subscription, "test.ping")
    db.session.commit()
    flash("Test event queued: watch the attempts log.")
    return redirect(url_for("outbound.show", subscription_id=subscription.id))


@bp.post("/subscriptions/<subscription_id>/replay")
@require_role("admin")
def replay(subscription_id: str):
    subscription = _subscription(subscription_id)
    try:
        since = service.parse_since(request.form["since"]) if request.form.get("since") else None
        event_id = request.form.get("event_id") or None
        replayed = service.replay(subscription, event_id=event_id, since=since)
    except SubscriptionError as exc:
        db.session.rollback()
        return _show(subscription, error=exc.detail, status=exc.status)
    db.session.commit()
    flash(f"Queued {len(replayed)} message(s) again.")
    return redirect(url_for("outbound.show", subscription_id=subscription.id))


@bp.post("/subscriptions/<subscription_id>/delete")
@require_role("admin")
def delete(subscription_id: str):
    subscription = _subscription(subscription_id)
    if subscription.source == "config":
        return _show(subscription, error="declared in a config file: remove it there", status=409)
    db.session.delete(subscription)
    db.session.commit()
    flash("Subscription deleted.")
    if request.htmx:  # hx-confirm asked first; go to the list
        return "", 204, {"HX-Redirect": url_for("outbound.index")}
    return redirect(url_for("outbound.index"))
