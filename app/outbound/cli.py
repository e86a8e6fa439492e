"""CLI: ``flask subscriptions create|list|replay``."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup

from app.extensions import db
from app.outbound import service
from app.outbound.models import Subscription
from app.outbound.service import SubscriptionError

subscriptions_cli = AppGroup("subscriptions", help="Outbound webhook subscriptions.")


@subscriptions_cli.command("create")
@click.option("--url", required=True, help="The receiver's http(s) URL.")
@click.option(
    "--events",
    "events",
    default="case.*",
    show_default=True,
    help="Event type patterns, comma-separated (e.g. 'case.*,output.approved').",
)
@click.option("--description", default="", help="What it is for.")
@click.option("--secret", default=None, help="A whsec_ secret (default: a new one).")
@click.option("--json", "as_json", is_flag=True, help="Print the subscription as JSON.")
def create_command(
    url: str, events: str, description: str, secret: str | None, as_json: bool
) -> None:
    """Create a subscription; prints its secret once."""
    data = {"url": url, "event_types": events, "description": description}
    if secret:
        data["secret"] = secret
    try:
        subscription, secret = service.create_subscription(data)
    except SubscriptionError as exc:
        raise click.ClickException(f"{exc.error}: {exc.detail}") from None
    db.session.commit()
    if as_json:
        click.echo(json.dumps({**service.subscription_dict(subscription), "secret": secret}))
        return
    click.echo(f"Created subscription {subscription.id} → {subscription.url}")
    click.echo(f"Events: {', '.join(subscription.event_types)}")
    click.echo(f"Secret (shown once): {secret}")


@subscriptions_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(as_json: bool) -> None:
    """List subscriptions with their health."""
    rows = db.session.scalars(db.select(Subscription).order_by(Subscription.created_at)).all()
    if as_json:
        click.echo(json.dumps([service.subscription_dict(s) for s in rows]))
        return
    if not rows:
        click.echo("No subscriptions. Create one: flask subscriptions create --url URL")
        return
    for subscription in rows:
        state = service.health(subscription)
        rate = "-" if state["success_rate"] is None else f"{state['success_rate']:.0%}"
        click.echo(
            f"{subscription.id}  {state['state']:<8} {rate:>5}  "
            f"{','.join(subscription.event_types):<20} {subscription.url}"
        )


@subscriptions_cli.command("replay")
@click.argument("subscription_id")
@click.option("--event", "event_id", default=None, help="Send this case event again.")
@click.option("--since", default=None, help="Send again what failed since (ISO 8601).")
def replay_command(subscription_id: str, event_id: str | None, since: str | None) -> None:
    """Send one message again, or every failed one since a time."""

    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None:
        raise click.ClickException(f"there is no subscription {subscription_id}")
    try:
        replayed = service.replay(
            subscription, event_id=event_id, since=service.parse_since(since) if since else None
        )
    except SubscriptionError as exc:
        raise click.ClickException(exc.detail) from None
    db.session.commit()
    click.echo(f"Queued {len(replayed)} message(s) again.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(subscriptions_cli)
