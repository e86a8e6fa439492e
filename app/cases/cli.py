"""CLI: ``flask cases list|show|close|reopen|inactivity`` and
``flask endpoints callback-token ENDPOINT_ID``.

The callback-token command joins the ``endpoints`` group defined in app/webhooks/cli.py from
here (``endpoints_cli.add_command``), so that it lives with the callback code it serves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.cases import callbacks, service
from app.cases.lifecycle import CaseInputError, TransitionError
from app.cases.models import CASE_STATUSES, Case
from app.cases.queries import CaseFilters, search_cases
from app.extensions import db

cases_cli = AppGroup("cases", help="Cases: list, show, close, reopen; inactivity rules.")
#: The actor recorded on events written from the command line.
CLI_ACTOR = "cli"


def _case(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    if case is None:
        raise click.ClickException(f"there is no case {case_id}; see `flask cases list`")
    return case


@cases_cli.command("list")
@click.option("--status", type=click.Choice(CASE_STATUSES), help="Only cases in this status.")
@click.option("--provider", help="Only cases from this provider (github, ...).")
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of cases.")
def list_command(status: str | None, provider: str | None, limit: int, as_json: bool) -> None:
    """List cases, most recently updated first."""
    filters = CaseFilters(status=status or "", provider=provider or "")
    cases, total = search_cases(filters, max(1, limit))
    if as_json:
        click.echo(json.dumps([case.to_dict() for case in cases]))
        return
    if not cases:
        click.echo("No cases" + (f" with status {status}" if status else "") + ".")
        return
    for case in cases:
        assignee = case.assignee.email if case.assignee else "-"
        click.echo(
            f"{case.id:>6}  {case.status:<9} {case.severity:<8} {case.provider:<12} "
            f"{assignee:<24} {case.title}"
        )
    if total > len(cases):
        click.echo(f"... {total - len(cases)} more (use --limit)")


@cases_cli.command("show")
@click.argument("case_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the case and its events as JSON.")
def show_command(case_id: int, as_json: bool) -> None:
    """Show one case and its timeline."""
    case = _case(case_id)
    if as_json:
        events = [event.to_dict() for event in case.events]
        click.echo(json.dumps({**case.to_dict(), "events": events}))
        return
    data = case.to_dict()
    click.echo(f"#{case.id} {case.title}")
    for key in ("status", "closed_reason", "severity", "provider", "endpoint_id", "assignee",
                "tags", "source_url", "dedup_key", "created_at", "updated_at"):  # fmt: skip
        value = data[key]
        if value not in (None, [], ""):
            click.echo(f"  {key:<14} {', '.join(value) if isinstance(value, list) else value}")
    click.echo("Timeline:")
    for event in case.events:
        by = f"  by {event.actor}" if event.actor else ""
        detail = event.payload.get("reason") or event.payload.get("note") or ""
        click.echo(f"  {event.to_dict()['created_at']}  {event.type}{by}  {detail}".rstrip())


def _act(case_id: int, action: str, **options) -> Case:
    case = _case(case_id)
    try:
        events = service.handle(case, action, actor=CLI_ACTOR, **options)
    except (TransitionError, CaseInputError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    if not events:
        click.echo(f"Case #{case.id}: nothing to change.")
    return case


@cases_cli.command("close")
@click.argument("case_id", type=int)
@click.option(
    "--reason",
    type=click.Choice(service.MANUAL_CLOSE_REASONS),
    default="manual",
    show_default=True,
)
@click.option("--note", help="Why, for the timeline.")
def close_command(case_id: int, reason: str, note: str | None) -> None:
    """Close a case (refused, with what is allowed, when it is already closed)."""
    case = _act(case_id, "close", reason=reason, note=note)
    click.echo(f"Closed case #{case.id} ({reason}).")


@cases_cli.command("reopen")
@click.argument("case_id", type=int)
@click.option("--note", help="Why, for the timeline.")
def reopen_command(case_id: int, note: str | None) -> None:
    """Reopen a resolved or closed case."""
    case = _act(case_id, "reopen", note=note)
    click.echo(f"Reopened case #{case.id}.")


@cases_cli.command("inactivity")
@click.option("--at", "at", type=float, help="Apply as if now were this Unix time.")
def inactivity_command(at: float | None) -> None:
    """Apply the endpoints' inactivity rules now (the sweeper does this every minute)."""
    from app.cases.inactivity import apply_inactivity_rules

    now = datetime.fromtimestamp(at, UTC) if at is not None else None
    done = apply_inactivity_rules(now)
    for case_id, outcome in done:
        click.echo(f"{outcome} case #{case_id}")
    click.echo(f"{len(done)} case(s) changed by inactivity rules.")


@click.command("callback-token")
@with_appcontext
@click.argument("endpoint_id")
@click.option("--revoke", is_flag=True, help="Remove the token: callbacks are refused.")
@click.option("--json", "as_json", is_flag=True, help='Print {"endpoint_id", "token"}.')
def callback_token_command(endpoint_id: str, revoke: bool, as_json: bool) -> None:
    """Print a new callback token for the endpoint's cases (shown once; the old one stops
    working). Outside systems send it as ``Authorization: Bearer <token>`` to
    ``POST /api/cases/<id>/callback``."""
    from flask import current_app

    from app.webhooks.models import Endpoint

    endpoint = db.session.get(Endpoint, endpoint_id)
    if endpoint is None:
        raise click.ClickException(
            f"there is no endpoint {endpoint_id}; see `flask endpoints list`"
        )
    if revoke:
        callbacks.revoke_callback_token(endpoint)
        db.session.commit()
        click.echo(f"Revoked the callback token of {endpoint.name!r}; its callbacks answer 401.")
        return
    token = callbacks.issue_callback_token(endpoint)
    db.session.commit()
    if as_json:
        click.echo(json.dumps({"endpoint_id": endpoint.id, "token": token}))
        return
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    click.echo(f"Callback token for {endpoint.name!r} ({endpoint.id}), shown only now:")
    click.echo(f"  {token}")
    click.echo("Use it for any case of this endpoint, e.g.:")
    click.echo(
        f"  curl -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
        f"""-d '{{"action": "close", "note": "fixed"}}' {base}/api/cases/CASE_ID/callback"""
    )


def register_cli(app: Flask) -> None:
    """Add ``flask cases`` and ``flask endpoints callback-token`` (call after the webhooks
    CLI is registered)."""
    from app.webhooks.cli import endpoints_cli

    app.cli.add_command(cases_cli)
    endpoints_cli.add_command(callback_token_command)
