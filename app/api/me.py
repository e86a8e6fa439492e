"""``/api/me``: who the API thinks you are (a quick check that a token works)."""

from __future__ import annotations

from flask import g, jsonify
from flask_login import current_user

from app.accounts.auth import require_role
from app.api import bp


@bp.get("/me")
@require_role("viewer")
def me():
    """``{"id", "email", "role", "authenticated_by": "token"|"session"}``."""
    return jsonify(
        id=current_user.id,
        email=current_user.email,
        role=current_user.role,
        authenticated_by=g.get("authenticated_by", "session"),
    )
