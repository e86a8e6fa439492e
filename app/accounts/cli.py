"""CLI: ``flask users`` (bootstrap, create, list, set-password) and ``flask tokens``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.accounts import service
from app.accounts.models import ROLES, ApiToken, User
from app.extensions import db

users_cli = AppGroup("users", help="Console users and their roles.")
tokens_cli = AppGroup("tokens", help="API tokens (Authorization: Bearer ...).")


def _user(email: str) -> User:
    user = service.find_user(email)
    if user is None:
        raise click.ClickException(f"there is no user {email!r}; see `flask users list`")
    return user


@contextmanager
def _account_errors() -> Iterator[None]:
    """A refusal of the accounts service (``AccountError``) as a CLI error (exit status 1)."""
    try:
        yield
    except service.AccountError as exc:
        raise click.ClickException(str(exc)) from None


@users_cli.command("bootstrap")
def bootstrap_command() -> None:
    """Create the first admin if there are no users (prints its password, once).

    With users already there it does nothing and prints nothing, so it can run at every
    start. The email is ``CASEHOOK_ADMIN_EMAIL`` (default admin@localhost).
    """
    bootstrap_and_say()


def bootstrap_and_say() -> None:
    """Create the first admin when there are no users, and print its email and password
    (``flask users bootstrap``; ``flask demo`` on an empty database)."""
    created = service.bootstrap_admin(current_app.config["ADMIN_EMAIL"])
    if created is None:
        return
    user, password = created
    click.echo("Created the first admin. The password is shown only now; change it on")
    click.echo("/account after signing in (or with `flask users set-password`).")
    click.echo(f"  Email:    {user.email}")
    click.echo(f"  Password: {password}")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--password", help="Generated (and printed) when omitted.")
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "email", "role", "password"}.')
def create_command(email: str, role: str, password: str | None, as_json: bool) -> None:
    """Create a user with a role (viewer, engineer or admin)."""
    with _account_errors():
        user, password_used = service.create_user(email, role, password)
    shown = None if password else password_used
    if as_json:
        click.echo(
            json.dumps(
                {"id": user.id, "email": user.email, "role": user.role}
                | ({"password": shown} if shown else {})
            )
        )
        return
    click.echo(f"Created {user.role} {user.email}")
    if shown:
        click.echo(f"  Password: {shown}   (shown only now; they can change it on /account)")


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """Users, their roles, and whether they are active."""
    users = db.session.scalars(db.select(User).order_by(User.created_at, User.id)).all()
    if as_json:
        click.echo(json.dumps([user.to_dict() for user in users]))
        return
    if not users:
        click.echo("No users yet: flask users bootstrap (first admin) or flask users create")
    for user in users:
        state = "active" if user.active else "deactivated"
        click.echo(f"{user.id:>4}  {user.role:<8} {state:<11} {user.email}")


@users_cli.command("set-password")
@click.option("--email", required=True)
@click.option("--password", help="Generated (and printed) when omitted.")
def set_password_command(email: str, password: str | None) -> None:
    """Set a user's password (e.g. a forgotten one)."""
    user = _user(email)
    new = password or service.generate_password()
    with _account_errors():
        service.set_password(user, new)
    click.echo(f"Password of {user.email} changed.")
    if not password:
        click.echo(f"  Password: {new}   (shown only now)")


@tokens_cli.command("create")
@click.option("--user", "email", required=True, help="The user the token acts as.")
@click.option("--name", default="cli", show_default=True, help="What will use the token.")
@click.option("--json", "as_json", is_flag=True, help='Print {"token", "prefix", "user"}.')
def tokens_create_command(email: str, name: str, as_json: bool) -> None:
    """Create an API token; it acts as the user, with the user's role."""
    user = _user(email)
    with _account_errors():
        token, clear = service.create_token(user, name)
    if as_json:
        click.echo(json.dumps({"token": clear, "prefix": token.prefix, "user": user.email}))
        return
    click.echo(f"Token {token.name!r} for {user.email} ({user.role}):")
    click.echo(f"  {clear}")
    click.echo("Shown only now: store it where it will be used. Send it as")
    click.echo("  Authorization: Bearer <token>")


@tokens_cli.command("list")
@click.option("--user", "email", help="Only this user's tokens.")
def tokens_list_command(email: str | None) -> None:
    """Tokens (prefix, name, user, state); never the tokens themselves."""
    query = db.select(ApiToken).order_by(ApiToken.id)
    if email:
        query = query.where(ApiToken.user_id == _user(email).id)
    tokens = db.session.scalars(query).all()
    if not tokens:
        click.echo("No tokens.")
    for token in tokens:
        state = "revoked" if token.revoked else "active"
        click.echo(f"{token.id:>4}  {token.prefix}…  {state:<8} {token.user.email}  {token.name}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke_command(token_id: int) -> None:
    """Revoke a token by its id (see ``flask tokens list``)."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"there is no token {token_id}; see `flask tokens list`")
    service.revoke_token(token)
    click.echo(f"Revoked token {token.prefix}… ({token.name}) of {token.user.email}.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
