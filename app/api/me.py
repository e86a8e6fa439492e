"""``/api/me``: who the API thinks you are (a quick check that a token works)."""

from __future__ import annotations

from flask import g
from flask_login import current_user

from app.accounts.auth import require_role
from app.api import bp
from app.api.schemas.me import Me
from app.api.spec import operation


@bp.get("/me")
@require_role("viewer")
@operation(responses={200: Me}, tag="me")
def me() -> Me:
    """The caller: user id, email, role, and whether a token or a session authenticated."""
    return Me(
        id=current_user.id,
        email=current_user.email,
        role=current_user.role,
        authenticated_by=g.get("authenticated_by", "session"),
    )
