"""``flask sync``: send events to ``CASEHOOK_SYNC_URL`` now, or see where sync stands."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup

sync_cli = AppGroup("sync", help="Event sync to CASEHOOK_SYNC_URL: send now, status.")


@sync_cli.command("now")
def now_command() -> None:
    """Send the next batch at once (even while backing off, or after a 401)."""
    from app.events import sync

    result = sync.send_batch(force=True)
    click.echo(json.dumps(result))
    if result["outcome"] in ("failed", "unauthorized"):
        raise SystemExit(1)


@sync_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_command(as_json: bool) -> None:
    """Pending events, the cursor, the last success and error, the next attempt."""
    from app.events import sync

    info = sync.status()
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(sync.status_line(info))
    for key in ("pending", "cursor", "last_success_at", "last_error", "last_error_at",
                "next_attempt_at"):  # fmt: skip
        click.echo(f"  {key}: {info[key] if info[key] is not None else '-'}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(sync_cli)
