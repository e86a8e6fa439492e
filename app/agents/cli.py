"""``flask agents``: register and list agents from the command line."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup

from app.agents import service
from app.agents.service import AgentError
from app.extensions import db

agents_cli = AppGroup("agents", help="Agents: external commands run on cases.")


@agents_cli.command("create")
@click.option("--name", required=True, help="A short unique name, e.g. summarise.")
@click.option("--argv", "argv_json", required=True, help="The command as a JSON list of strings.")
@click.option("--description", default="")
@click.option("--workdir", default=None, help="Working directory (default: a fresh temp dir).")
@click.option("--env", "env", multiple=True, help="A variable name passed through (repeatable).")
@click.option("--max-concurrent", type=int, default=None)
@click.option("--timeout", "timeout_seconds", type=int, default=None, help="Seconds.")
@click.option("--max-output-bytes", type=int, default=None)
@click.option("--retries", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def create_command(
    name: str,
    argv_json: str,
    description: str,
    workdir: str | None,
    env: tuple[str, ...],
    max_concurrent: int | None,
    timeout_seconds: int | None,
    max_output_bytes: int | None,
    retries: int | None,
    as_json: bool,
) -> None:
    """Register an agent."""
    try:
        argv = json.loads(argv_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--argv") from None
    data = {"name": name, "argv": argv, "description": description, "env": list(env)}
    if workdir:
        data["workdir"] = workdir
    for key, value in (("max_concurrent", max_concurrent), ("timeout_seconds", timeout_seconds),
                       ("max_output_bytes", max_output_bytes), ("retries", retries)):  # fmt: skip
        if value is not None:
            data[key] = value
    try:
        agent = service.create_agent(data, source="cli")
    except AgentError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    if as_json:
        click.echo(json.dumps(agent.to_dict()))
    else:
        click.echo(f"Created agent {agent.name}: {' '.join(agent.argv)}")


@agents_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """Every registered agent."""
    agents = service.all_agents()
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in agents]))
        return
    if not agents:
        click.echo("No agents.")
    for agent in agents:
        click.echo(f"{agent.name:<24} max {agent.max_concurrent}  {agent.timeout_seconds}s  "
                   f"{json.dumps(agent.argv)}")  # fmt: skip


def register_cli(app: Flask) -> None:
    app.cli.add_command(agents_cli)
