"""Users (who signs in, with which role) and their API tokens."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Literal

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db

Role = Literal["viewer", "engineer", "admin"]
#: Lowest first: each role may do everything the roles before it may.
ROLES: tuple[Role, ...] = ("viewer", "engineer", "admin")
ROLE_HELP = {
    "viewer": "reads cases, endpoints and deliveries",
    "engineer": "reads, and works cases",
    "admin": "reads, works cases, and manages endpoints, commands and users",
}


class User(UserMixin, db.Model):
    """Someone who signs in to the console (and owns API tokens).

    ``email`` is stored lower-cased and unique. ``active`` False (deactivated) refuses the
    session, the "keep me signed in" cookie and every token of the user at once.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(20), default="viewer")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_login_at: Mapped[datetime | None]
    #: Desktop notifications of new critical or escalated cases on the case table (the
    #: browser asks its own permission when the user turns this on at /account).
    notify_desktop: Mapped[bool] = mapped_column(default=False, server_default=false())

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="ApiToken.id.desc()"
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses to sign in inactive users
        return self.active

    def get_id(self) -> str:
        """What the session (and the "keep me signed in" cookie) stores: the id plus a
        fingerprint of the password hash, so that a new password signs out every other
        session of the user (``auth.load_user`` compares it)."""
        return f"{self.id}:{self._password_fingerprint()}"

    def matches_session_id(self, session_id: str) -> bool:
        return hmac.compare_digest(session_id, self.get_id())

    def _password_fingerprint(self) -> str:
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def has_role(self, role: Role) -> bool:
        """True when this user's role is ``role`` or above it (``ROLES`` order)."""
        return self.role in ROLES and ROLES.index(self.role) >= ROLES.index(role)

    def to_dict(self) -> dict:
        from app.templating import as_utc

        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "active": self.active,
            "created_at": as_utc(self.created_at).isoformat(),
            "last_login_at": as_utc(self.last_login_at).isoformat() if self.last_login_at else None,
        }


class ApiToken(db.Model):
    """A bearer token for the JSON API; it acts as its user, with the user's role.

    Only the SHA-256 of the token is stored (tokens are 256-bit random, so a plain hash is
    enough; no salt or slow hash needed). ``prefix`` (the first characters) is kept so that
    people can tell their tokens apart after the token itself is gone.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    #: Set on the short-lived tokens agents get: usable only under /api/cases/<case_id>,
    #: and not after ``expires_at``.
    case_id: Mapped[int | None]
    expires_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
