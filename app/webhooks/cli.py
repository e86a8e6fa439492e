"""CLI: ``flask endpoints``, ``flask deliveries``, ``flask demo``, ``flask webhooks verify``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from redis.exceptions import RedisError

from app import clock, logs
from app.cases.models import Case
from app.extensions import db
from app.webhooks.inbox import pending_deliveries, wake_stranded
from app.webhooks.models import Delivery, Endpoint
from app.webhooks.providers import PROVIDERS
from app.webhooks.providers.base import Provider, Sample, header_lines
from app.webhooks.secrets import (
    SecretUnavailable,
    endpoint_secret,
    generate_secret,
    store_secret,
)


def create_endpoint(provider: str, name: str, secret: str | None = None) -> tuple[Endpoint, str]:
    """Create and commit an endpoint; returns it and its clear secret (generated if None)."""
    secret = secret or generate_secret(provider)
    endpoint = Endpoint(provider=provider, name=name)
    store_secret(endpoint, secret)
    db.session.add(endpoint)
    db.session.commit()
    return endpoint, secret


def endpoint_url(endpoint: Endpoint) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + endpoint.path


endpoints_cli = AppGroup("endpoints", help="Configured inbound webhook endpoints.")
webhooks_cli = AppGroup("webhooks", help="Check saved webhook requests.")
config_cli = AppGroup("config", help="Config as code: YAML files in CASEHOOK_CONFIG_DIR.")
deliveries_cli = AppGroup("deliveries", help="Stored deliveries.")


@endpoints_cli.command("create")
@click.option("--provider", required=True, type=click.Choice(sorted(PROVIDERS)))
@click.option("--name", required=True, help="A name people recognise, e.g. the repository.")
@click.option("--secret", help="The webhook secret; generated when omitted.")
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "url", "secret"}.')
def create_command(provider: str, name: str, secret: str | None, as_json: bool) -> None:
    """Create an endpoint and print its URL and secret (the secret is shown only now)."""
    endpoint, secret = create_endpoint(provider, name, secret)
    url = endpoint_url(endpoint)
    if as_json:
        click.echo(json.dumps({"id": endpoint.id, "url": url, "secret": secret}))
        return
    click.echo(f"Created {provider} endpoint {endpoint.name!r} ({endpoint.id})")
    click.echo(f"  URL:    {url}")
    click.echo(f"  Secret: {secret}")
    click.echo("Paste both into the provider's webhook settings; the secret is not shown again.")


@endpoints_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """List endpoints with their URLs."""
    endpoints = db.session.scalars(db.select(Endpoint).order_by(Endpoint.created_at)).all()
    rows = [
        {
            "id": e.id,
            "provider": e.provider,
            "name": e.name,
            "url": endpoint_url(e),
            "enabled": e.enabled,
        }
        for e in endpoints
    ]
    if as_json:
        click.echo(json.dumps(rows))
    elif not rows:
        click.echo("No endpoints yet: flask endpoints create --provider github --name NAME")
    for row in [] if as_json else rows:
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(f"{row['id']}  {row['provider']:<8} {state:<8} {row['name']}  {row['url']}")


@deliveries_cli.command("requeue")
@click.option("--older-than", default=0.0, show_default=True, help="Seconds since receipt.")
def requeue_command(older_than: float) -> None:
    """Wake workers for deliveries stored but not processed yet (the supervisor does this by
    itself within seconds; this is for the impatient)."""
    try:
        partitions = wake_stranded(older_than, force=True)
    except RedisError as exc:
        raise click.ClickException(f"Redis is unreachable ({exc}); is REDIS_URL right?") from exc
    count = pending_deliveries()
    click.echo(f"Requeued {count} deliveries ({partitions} inbox partitions woken).")


@config_cli.command("sync")
@click.option(
    "--dir",
    "config_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of YAML files (default: $CASEHOOK_CONFIG_DIR).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def config_sync_command(config_dir: Path | None, dry_run: bool) -> None:
    """Create, update and delete endpoints and commands to match the YAML files."""
    from app.webhooks.config_sync import ConfigError, sync

    config_dir = config_dir or _config_dir()
    if config_dir is None:
        raise click.ClickException("no folder: pass --dir or set CASEHOOK_CONFIG_DIR")
    if not config_dir.is_dir():
        raise click.ClickException(f"{config_dir} is not a folder")
    try:
        changes = sync(config_dir, dry_run=dry_run)
    except ConfigError as exc:
        raise click.ClickException("config not synced:\n  " + "\n  ".join(exc.problems)) from exc
    prefix = "would " if dry_run else ""
    for change in changes:
        click.echo(prefix + change)
    click.echo(
        f"{len(changes)} change(s){' (dry run: nothing written)' if dry_run else ''}"
        if changes
        else "Up to date: nothing to change."
    )


def _config_dir() -> Path | None:
    value = current_app.config.get("CONFIG_DIR") or os.environ.get("CASEHOOK_CONFIG_DIR")
    return Path(value) if value else None


def read_headers(text: str) -> dict[str, str]:
    """Headers from a saved request: a JSON object, or ``Name: value`` lines (as ``curl -D``
    or a raw HTTP request writes them; a leading request/status line is skipped)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(stripped).items()}
    return header_lines(stripped)


@webhooks_cli.command("verify")
@click.option("--provider", required=True, type=click.Choice(sorted(PROVIDERS)))
@click.option("--secret", required=True, help="The endpoint's secret.")
@click.option(
    "--headers",
    "headers_file",
    required=True,
    type=click.File("r"),
    help="Saved headers: JSON object or 'Name: value' lines.",
)
@click.option(
    "--body", "body_file", required=True, type=click.File("rb"), help="The raw body, byte for byte."
)
@click.option("--at", "at", type=float, help="Check as if now were this Unix time.")
def verify_command(provider: str, secret: str, headers_file, body_file, at: float | None) -> None:
    """Check a saved request offline, with the route's own code: prints ``valid`` (exit 0)
    or ``invalid: <check>: <detail>`` (exit 1)."""
    from datetime import UTC, datetime

    from werkzeug.datastructures import Headers

    from app import clock
    from app.webhooks.providers.base import VerificationError

    headers = Headers(list(read_headers(headers_file.read()).items()))
    body = body_file.read()
    moment = datetime.fromtimestamp(at, UTC) if at is not None else clock.now()
    try:
        with clock.frozen_at(moment):
            PROVIDERS[provider].verify(secret, headers, body)
    except VerificationError as exc:
        click.echo(f"invalid: {exc.check}: {exc.detail}")
        raise SystemExit(1) from None
    click.echo("valid")


def demo_endpoint(provider: str) -> tuple[Endpoint, str | None, bool]:
    """The demo endpoint of ``provider`` (named ``Demo (<provider>)``), created when missing:
    ``(endpoint, clear secret or None when it cannot be read, created)``."""
    name = f"Demo ({provider})"
    endpoint = db.session.scalars(
        db.select(Endpoint)
        .where(Endpoint.provider == provider, Endpoint.name == name)
        .order_by(Endpoint.created_at)
    ).first()
    if endpoint is None:
        endpoint, secret = create_endpoint(provider, name)
        return endpoint, secret, True
    try:
        return endpoint, endpoint_secret(endpoint), False
    except SecretUnavailable:
        return endpoint, None, False


def _send_samples(
    provider: Provider, endpoint: Endpoint, secret: str, extra: list[tuple[Sample, str]] = ()
) -> tuple[int, list[str]]:
    """Post every sample of ``provider``, then ``extra`` (``(sample, delivery id)``), to
    ``endpoint`` through the real route, in process; ``(number sent, one phrase per kind of
    answer)``."""
    client = current_app.test_client()
    queued, at_once, refused = 0, [], []
    # The route runs its own transactions: end ours first (SQLite would make it wait).
    db.session.commit()
    now = int(clock.now().timestamp())
    requests = [(s, provider.sample_request(secret, s)) for s in provider.samples()] + [
        (s, {**s.headers, **provider.sign_request(secret, s.body, delivery_id, now)})
        for s, delivery_id in extra
    ]
    for sample, headers in requests:
        response = client.post(endpoint.path, data=sample.body, headers=headers)
        answer = response.get_json(silent=True) or {}
        if response.status_code == 202:
            queued += 1
        elif response.status_code == 200:
            at_once.append(sample.name + (" (already sent)" if answer.get("duplicate") else ""))
        else:
            detail = str(answer.get("detail") or answer.get("error") or "")[:120]
            refused.append(f"{sample.name}: {response.status_code} {detail}".rstrip())
    phrases = [f"{queued} queued"] if queued else []
    phrases += [f"answered at once: {', '.join(at_once)}"] if at_once else []
    phrases += [f"refused: {'; '.join(refused)}"] if refused else []
    return queued + len(at_once) + len(refused), phrases


@click.command("demo")
@click.option(
    "--again", is_flag=True, help="Send the samples again to demo endpoints that had them."
)
@with_appcontext
def demo_command(again: bool) -> None:
    """A first look: every provider's sample requests (and a few more incidents) through the
    real webhook route, signed the way that provider signs, to a demo endpoint per provider
    (created when missing); the deliveries turned into cases here and now; cases put in
    every state, and one worked case (branches, a handoff, approved outputs; app/demo.py).
    Run twice, it leaves loaded endpoints alone (--again resends)."""
    from app import demo
    from app.accounts.cli import bootstrap_and_say

    sent, loaded = 0, []
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    cases = base + "/cases"
    bootstrap_and_say()  # before the demo's engineers exist: the first admin is yours
    # Human sentences here; the route's and the worker's JSON log lines would drown them.
    with logs.quiet():
        for provider in PROVIDERS.values():
            if not provider.samples():
                continue
            endpoint, secret, created = demo_endpoint(provider.name)
            has_deliveries = not created and db.session.scalar(
                db.select(Delivery.id).where(Delivery.endpoint_id == endpoint.id).limit(1)
            )
            if has_deliveries and not again:
                loaded.append(provider.name)
                continue
            if not sent:
                click.echo("Sending each provider's sample requests through the webhook route:")
            label = f"  {provider.name:<13}"
            if secret is None:
                click.echo(f"{label}skipped: the secret of {endpoint.name!r} cannot be read")
                continue
            extra = demo.incident_samples() if provider.name == demo.PROVIDER else []
            count, phrases = _send_samples(provider, endpoint, secret, extra)
            sent += count
            click.echo(f"{label}{count} sent: {'; '.join(phrases)}")
        if sent:
            click.echo(f"Sent {sent} deliveries.")
        if loaded:
            click.echo(
                f"Demo already loaded for {', '.join(loaded)}: nothing sent again "
                "(flask demo --again resends)."
            )
        try:
            left = demo.process_waiting()
        except RedisError as exc:
            click.echo(
                f"Redis is unreachable ({exc}): a worker turns the deliveries into cases once "
                f"it runs; then `flask demo` again works the demo cases. Cases: {cases}"
            )
            return
        if left:
            click.echo(f"{left} deliveries still wait for a worker; `flask demo` again later.")
        endpoint, _, _ = demo_endpoint(demo.PROVIDER)
        staged = demo.stage(endpoint)
    count = db.session.scalar(db.select(db.func.count(Case.id)))
    click.echo(f"{count} cases: {cases}")
    for state, ids in sorted(staged.states.items()):
        if state != "worked":
            click.echo(f"  {state:<13}{', '.join(f'#{i}' for i in ids)}")
    if staged.worked is not None:
        worked = staged.worked
        click.echo(
            f"Worked case #{worked.id} ({worked.title}): a dead end and a solved branch, "
            f"an escalation claimed by {demo.BEN}, resolved, outputs approved"
            f"{'' if staged.worked_now else ' (already)'}: {base}/cases/{worked.id}"
        )


def register_cli(app: Flask) -> None:
    app.cli.add_command(endpoints_cli)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(config_cli)
    app.cli.add_command(deliveries_cli)
    app.cli.add_command(demo_command)
