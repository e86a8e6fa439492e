"""The rules for accounts: create users, check passwords, change roles, issue tokens.

Plain functions over the database; routes and CLI commands call them. They raise
``AccountError`` (a ``ValueError``) with a message fit to show as it is; they commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import cache

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app import clock
from app.accounts.models import ROLES, ApiToken, Role, User
from app.errors import DomainError
from app.extensions import db
from app.templating import as_utc

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "chk_"  # marks Casehook tokens, e.g. for secret scanners
#: ``last_used_at`` is written at most this often per token: no write on every API call.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
# Lenient on purpose ("admin@localhost" is fine): one @, something either side, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class AccountError(DomainError, ValueError):
    """A refused account change; ``str(error)`` says what was wrong."""


class WrongPassword(AccountError):
    """The password given to confirm a change is not the account's (a failed check)."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def generate_password() -> str:
    """A random password (16 URL-safe characters, ~96 bits)."""
    return secrets.token_urlsafe(12)


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def user_count() -> int:
    return db.session.scalar(db.select(func.count(User.id))) or 0


def find_user(email: str) -> User | None:
    return db.session.scalar(db.select(User).where(User.email == normalise_email(email)))


def create_user(email: str, role: str, password: str | None = None) -> tuple[User, str]:
    """Create and commit a user; returns it and its password (generated when None).

    Errors: the email is not an address, the role is unknown, the password is too short, or
    a user with that email exists.
    """
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 320:
        raise AccountError(f"{email!r} is not an email address")
    role = check_role(role)
    if password is None:
        password = generate_password()
    _check_password(password)
    if find_user(email) is not None:
        raise AccountError(f"a user with email {email} already exists")
    user = User(email=email, role=role, password_hash=generate_password_hash(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # created by someone else since we looked
        db.session.rollback()
        raise AccountError(f"a user with email {email} already exists") from None
    return user, password


def bootstrap_admin(email: str) -> tuple[User, str] | None:
    """Create the first admin when there are no users at all; None when there are some."""
    if user_count():
        return None
    try:
        return create_user(email, "admin")
    except AccountError:  # another process bootstrapped at the same moment
        return None


@cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, else None (which part was wrong is
    not said, and an unknown email costs the same hashing time as a wrong password)."""
    user = find_user(email)
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    user.last_login_at = clock.now()
    db.session.commit()
    return user


def set_password(user: User, password: str) -> None:
    _check_password(password)
    user.password_hash = generate_password_hash(password)
    db.session.commit()


def change_password(user: User, current: str, new: str) -> None:
    """A user's own change: the current password must be right."""
    if not check_password_hash(user.password_hash, current):
        raise WrongPassword("the current password is not right")
    set_password(user, new)


def _other_active_admins(user: User) -> int:
    return (
        db.session.scalar(
            db.select(func.count(User.id)).where(
                User.role == "admin", User.active.is_(True), User.id != user.id
            )
        )
        or 0
    )


def set_role(user: User, role: str, *, by: User | None = None) -> None:
    """Change ``user``'s role. Refused for one's own account (``by``) and for the last
    active admin, so that nobody locks everyone out of user management."""
    role = check_role(role)
    if role == user.role:
        return
    if by is not None and by.id == user.id:
        raise AccountError("you cannot change your own role; ask another admin")
    if user.role == "admin" and user.active and not _other_active_admins(user):
        raise AccountError(f"{user.email} is the last active admin; make someone else admin first")
    user.role = role
    db.session.commit()


def set_active(user: User, active: bool, *, by: User | None = None) -> None:
    """Deactivate (signs the user out everywhere and stops their tokens) or reactivate.
    The same refusals as ``set_role``."""
    if active == user.active:
        return
    if not active:
        if by is not None and by.id == user.id:
            raise AccountError("you cannot deactivate your own account; ask another admin")
        if user.role == "admin" and not _other_active_admins(user):
            raise AccountError(
                f"{user.email} is the last active admin; make someone else admin first"
            )
    user.active = active
    db.session.commit()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Create and commit a token for ``user``; returns it and the token in clear (shown
    once: only its hash and prefix are stored). Error: an empty or over-long name."""
    name = name.strip()
    if not name:
        raise AccountError("give the token a name, e.g. what will use it")
    if len(name) > 100:
        raise AccountError("the token name is longer than 100 characters")
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user, name=name, token_hash=hash_token(clear), prefix=clear[: len(TOKEN_PREFIX) + 6]
    )
    db.session.add(token)
    db.session.commit()
    return token, clear


def revoke_token(token: ApiToken) -> None:
    """Revoke (idempotent): the token stops working at once and stays listed as revoked."""
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        db.session.commit()


def user_for_token(clear: str) -> User | None:
    """The active user a live token belongs to, else None (see ``live_token``)."""
    token = live_token(clear)
    return token.user if token is not None else None


def live_token(clear: str) -> ApiToken | None:
    """The token if it is known, not revoked, not expired and its user active, else None.
    Notes the use on the token, at most once per ``TOKEN_TOUCH_INTERVAL``, so reading the
    API does not write each time."""
    token = db.session.scalar(
        db.select(ApiToken).where(
            ApiToken.token_hash == hash_token(clear), ApiToken.revoked_at.is_(None)
        )
    )
    if token is None or not token.user.active:
        return None
    now = clock.now()
    if token.expires_at is not None and as_utc(token.expires_at) <= now:
        return None
    if token.last_used_at is None or as_utc(token.last_used_at) < now - TOKEN_TOUCH_INTERVAL:
        token.last_used_at = now
        db.session.commit()
    return token


#: The account that agents' case-scoped tokens act as (engineer: may read and note a case).
AGENTS_ACCOUNT = "agents@casehook.invalid"


def create_case_token(case_id: int, *, ttl_seconds: float, name: str) -> str:
    """A token for agents, valid for ``ttl_seconds`` and only under ``/api/cases/<case_id>``;
    returns it in clear. Added to the session (the caller commits), as the agents account
    (created, deactivated from sign-in by a random password nobody knows, on first use)."""
    user = find_user(AGENTS_ACCOUNT)
    if user is None:
        user = User(email=AGENTS_ACCOUNT, role="engineer",
                    password_hash=generate_password_hash(secrets.token_urlsafe(32)))  # fmt: skip
        db.session.add(user)
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(
            user=user,
            name=name[:100],
            token_hash=hash_token(clear),
            prefix=clear[: len(TOKEN_PREFIX) + 6],
            case_id=case_id,
            expires_at=clock.now() + timedelta(seconds=ttl_seconds),
        )
    )
    db.session.flush()
    return clear


def set_desktop_notifications(user: User, on: bool) -> None:
    """Turn ``user``'s desktop notifications (the case table, see static/console.js) on or
    off."""
    user.notify_desktop = bool(on)
    db.session.commit()
