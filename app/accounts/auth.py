"""Who is asking, and may they? Sessions, bearer tokens, and ``require_role``.

How to guard a view (console or API)::

    from app.accounts.auth import require_role

    @bp.post("/cases/<int:case_id>/claim")
    @require_role("engineer")          # below the route decorator, so Flask registers it
    def claim(case_id): ...

Roles are ordered ``viewer < engineer < admin`` and each includes those before it:

- ``viewer`` reads (every console page and ``GET /api/...``),
- ``engineer`` works cases (transitions, branches, handoffs, notes, tasks),
- ``admin`` manages endpoints, commands, subscriptions, agents and users.

What a refused request gets:

- nobody signed in, console: a redirect to ``/login?next=<this page>`` (htmx requests: a
  ``401`` with ``HX-Redirect``, so the whole page goes to the login, not a fragment);
- nobody signed in, ``/api/...``: ``401 {"error": "unauthorized", "detail": ...}`` saying how
  to authenticate (``Authorization: Bearer <token>``), or why the token sent was refused;
- signed in with a lower role: ``403`` naming the role needed and the user's role (JSON under
  ``/api/``, a readable page in the console).

Views with no decorator still need a signed-in viewer (``require_login_by_default``): a
forgotten decorator fails closed. Views anyone may call (signature-authenticated webhooks,
probes, the login page) say so with ``@public``.

API requests authenticate with the session cookie (a browser on the console) or with
``Authorization: Bearer <token>`` (scripts). A session cookie travels with cross-site requests
too, so session-authenticated unsafe API requests must carry the CSRF token (``X-CSRFToken``,
as the console's htmx requests do); bearer-token requests cannot be forged cross-site and need
none (``check_csrf``). When both are sent, the session wins.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.accounts import service
from app.accounts.models import ROLE_HELP, ROLES, Role, User
from app.extensions import csrf, db, login_manager

F = TypeVar("F", bound=Callable[..., Any])

HOW_TO_AUTHENTICATE = (
    "send Authorization: Bearer <token>; create a token on /account/tokens in the console or "
    "with `flask tokens create --user EMAIL`"
)
_public_blueprints: set[str] = set()
_public_endpoints = {"static"}  # the stylesheet and htmx, which the login page needs too
_guarded_originals: weakref.WeakSet[Callable] = weakref.WeakSet()


def wants_json() -> bool:
    """Machines (``/api/``, ``/webhooks/``, or asking for JSON) get JSON errors."""
    return request.path.startswith(("/api/", "/webhooks/")) or (
        request.accept_mimetypes.best == "application/json"
    )


def require_role(role: Role) -> Callable[[F], F]:
    """Decorate a view so that only signed-in users with ``role`` or above reach it.

    See the module docstring for the refusals. Put it *below* ``@bp.get``/``@bp.post``
    (Flask must register the guarded function); ``init_app`` refuses to start otherwise.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {ROLES}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            refusal = check_access(role)
            if refusal is not None:
                return refusal
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]
        _guarded_originals.add(view)
        return guarded  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as open to anyone (it authenticates some other way, or not at all)."""
    view.public = True  # type: ignore[attr-defined]
    return view


def make_public(blueprint: Blueprint) -> None:
    """Mark every view of ``blueprint`` public (e.g. the health probes)."""
    _public_blueprints.add(blueprint.name)


def check_access(role: Role) -> Response | None:
    """None when the current user may act as ``role``; else the refusal to return
    (unauthenticated) or an ``abort(403)``."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.has_role(role):
        above = "" if role == ROLES[-1] else " (or above)"
        abort(
            403,
            description=(
                f"this needs the {role} role{above}; you are signed in as "
                f"{current_user.email} with the {current_user.role} role. Ask an admin "
                "if you need more."
            ),
        )
    return None


def require_login_by_default() -> Response | None:
    """``before_request``: a view that is neither ``@public`` nor ``@require_role`` needs a
    signed-in viewer."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None or _is_public(view) or hasattr(view, "required_role"):
        return None
    return check_access("viewer")


def _is_public(view: Callable) -> bool:
    return (
        getattr(view, "public", False)
        or request.blueprint in _public_blueprints
        or request.endpoint in _public_endpoints
    )


def check_csrf() -> None:
    """``before_request``, in place of CSRFProtect's own check (``WTF_CSRF_CHECK_DEFAULT``
    is off): every unsafe request (POST, PUT, PATCH, DELETE) carries the CSRF token (form
    field ``csrf_token`` or header ``X-CSRFToken``), except

    - views and blueprints exempted with ``csrf.exempt`` (the signature-authenticated
      webhook routes);
    - ``/api/`` requests not authenticated by the session cookie: a bearer token cannot be
      forged cross-site (a browser does not add it by itself), and with no credentials at all
      ``require_role`` answers 401 (``@public`` API views authenticate some other way).

    A browser sends the session cookie with a forged cross-site request too, hence the
    token on session-authenticated API writes. Raises ``CSRFError`` (400).
    """
    config = current_app.config
    if not config["WTF_CSRF_ENABLED"] or request.method not in config["WTF_CSRF_METHODS"]:
        return
    if request.path.startswith("/api/"):
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        if view is not None and _is_public(view):
            return
        if not current_user.is_authenticated or g.get("authenticated_by") == "token":
            return
    csrf.protect(apply_exemptions=True)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session's user (``User.get_id``: ``"<id>:<password fingerprint>"``), unless
    deactivated or given a new password since, either of which signs them out at once."""
    user_id = session_id.partition(":")[0]
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    if user is None or not user.active or not user.matches_session_id(session_id):
        return None
    return user


@login_manager.request_loader
def load_user_from_bearer_token(req: Request) -> User | None:
    """``Authorization: Bearer <token>`` on ``/api/`` requests (tokens are for the API only).

    Consulted only when the session names no user. A refusal leaves its reason in
    ``g.auth_problem`` for the 401's detail.
    """
    header = req.headers.get("Authorization")
    if not header or not req.path.startswith("/api/"):
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        g.auth_problem = "the Authorization header must be 'Bearer <token>'"
        return None
    found = service.live_token(token.strip())
    if found is None:
        g.auth_problem = (
            "the bearer token is not valid: unknown, revoked, expired, or its user is deactivated"
        )
        return None
    scope = f"/api/cases/{found.case_id}"
    if found.case_id is not None and not (req.path == scope or req.path.startswith(scope + "/")):
        g.auth_problem = f"this token may only be used for case {found.case_id} ({scope}/...)"
        return None
    g.authenticated_by = "token"
    return found.user


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    """Nobody (valid) signed in: 401 JSON for machines, the login page for people."""
    if wants_json():
        detail = g.get("auth_problem") or f"authentication required: {HOW_TO_AUTHENTICATE}"
        response = jsonify(error="unauthorized", detail=detail)
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="casehook"'
        return response
    if request.headers.get("HX-Request"):
        # A fragment request: send the whole page to the login, back to where it was.
        came_from = _local_path(request.headers.get("HX-Current-URL", "")) or "/"
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = url_for("accounts.login", next=came_from)
        return response
    came_from = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("accounts.login", next=came_from))


def _local_path(url: str) -> str | None:
    """Path and query of ``url``, or None when empty."""
    parts = urlsplit(url)
    if not parts.path:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site (no open redirect), else None."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    # Browsers take a backslash for a slash and drop tabs and newlines, which would turn
    # such a path into "//other.site/...".
    if "\\" in target or any(ord(char) < 32 for char in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def csrf_error(error: CSRFError) -> Any:
    """CSRF refusals say what to do: JSON under ``/api/``, a readable page elsewhere."""
    if wants_json():
        detail = (
            f"{error.description} Send the X-CSRFToken header with the token from the console "
            f"page (as its htmx requests do), or authenticate with a token instead: "
            f"{HOW_TO_AUTHENTICATE}."
        )
        return jsonify(error="csrf_failed", detail=detail), 400
    error.description = (
        f"{error.description} The page was probably open from before you signed in again, or "
        "the request came from another site. Reload the page and try again."
    )
    return render_template("error.html", error=error), 400


def init_app(app: Flask) -> None:
    """Wire the access rules into ``app``; call after the blueprints are registered."""
    for endpoint, view in app.view_functions.items():
        if view in _guarded_originals:
            raise RuntimeError(
                f"{endpoint}: @require_role sits above the route decorator; put it below "
                "@bp.get/@bp.post so that Flask registers the guarded view"
            )
    login_manager.session_protection = "basic"
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # check_csrf decides instead
    app.before_request(check_csrf)
    app.jinja_env.globals["role_help"] = ROLE_HELP
    app.before_request(require_login_by_default)
    app.register_error_handler(CSRFError, csrf_error)
