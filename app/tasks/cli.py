"""``flask tasks``: look at background work, run it by hand, or supervise from a process."""

from __future__ import annotations

import contextlib
import json
import signal
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import db
from app.tasks.models import Task

tasks_cli = AppGroup("tasks", help="Background tasks: list, run due ones, supervise.")


@tasks_cli.command("list")
@click.option("--status", help="Only tasks in this state (queued, running, failed, ...).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
def list_command(status: str | None, limit: int, as_json: bool) -> None:
    """The newest tasks, with their state and last error."""
    query = db.select(Task).order_by(Task.created_at.desc()).limit(limit)
    if status:
        query = query.where(Task.status == status)
    tasks = db.session.scalars(query).all()
    if as_json:
        click.echo(json.dumps([task.to_dict() for task in tasks]))
        return
    if not tasks:
        click.echo("No tasks.")
    for task in tasks:
        error = f"  ({task.last_error})" if task.last_error else ""
        click.echo(f"{task.id}  {task.kind:<24} {task.status:<10} "
                   f"{task.attempts}/{task.max_attempts}  {task.subject}{error}")  # fmt: skip


@tasks_cli.command("run")
def run_command() -> None:
    """Run every due task in this process now (no worker needed)."""
    from app.tasks.runner import run_due

    click.echo(f"Ran {run_due()} tasks.")


@tasks_cli.command("supervise")
@click.option("--once", is_flag=True, help="One tick, then exit.")
def supervise_command(once: bool) -> None:
    """Run the supervisor in the foreground (workers already run one each; this is for
    deployments that want it as a process of its own)."""
    from app.tasks import supervisor

    if once:
        click.echo(json.dumps(supervisor.supervise_once(supervisor.Supervisor())))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    app: Flask = current_app._get_current_object()
    with contextlib.suppress(KeyboardInterrupt):
        supervisor.run_forever(app, stop)


def register_cli(app: Flask) -> None:
    app.cli.add_command(tasks_cli)
