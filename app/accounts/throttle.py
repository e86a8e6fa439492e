"""Throttling of password checks: sign-in and password change, per client IP and per account.

A password check costs ~240 ms of CPU (scrypt) on the web processes that also answer
webhooks. Failed checks are counted (Flask-Limiter, in the Redis at ``REDIS_URL`` so that every
web process shares the counts); past ``LOGIN_LIMIT_PER_IP`` or ``LOGIN_LIMIT_PER_ACCOUNT`` a
request is refused with 429 and ``Retry-After`` before any hashing. Only failures count, so a
team behind one address that signs in correctly is never throttled; an account's limit covers
unknown emails too, so a refusal does not tell whether an account exists.

Redis unreachable: each process counts in its own memory instead (Flask-Limiter's in-memory
fallback, logged as a warning by the ``flask-limiter`` logger) and goes back to Redis when it
answers again; sign-in keeps working either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_login import current_user
from limits import parse_many
from werkzeug.exceptions import TooManyRequests

F = TypeVar("F", bound=Callable)

#: Redis calls give up quickly when Redis is gone: a sign-in must not wait on it.
STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def _prefix() -> str:
    # One namespace per Casehook instance (and per test): the instance's queue name.
    return f"casehook:{current_app.config['RQ_QUEUE']}:throttle"


def _client_ip() -> str:
    """The client's address (behind a proxy, right only with ``TRUSTED_PROXIES`` set)."""
    return f"{_prefix()}:ip:{request.remote_addr or 'unknown'}"


def _account() -> str:
    """The account whose password is checked: the email typed on the sign-in form, else the
    signed-in user's. Normalised like ``service.find_user`` so that case changes do not
    make a fresh bucket."""
    if request.endpoint == "accounts.login" or not current_user.is_authenticated:
        email = request.form.get("email", "")
    else:
        email = current_user.email
    return f"{_prefix()}:account:{email.strip().lower()}"


def _failed(_response) -> bool:
    return bool(g.get("password_check_failed"))


limiter = Limiter(
    key_func=_client_ip,
    headers_enabled=False,  # the 429 alone says Retry-After (_too_many), not every sign-in
    swallow_errors=True,  # a storage error is logged, never a 500
    in_memory_fallback_enabled=True,
    strategy="fixed-window",
)


@limiter.request_filter
def _inbound_webhooks() -> bool:
    # Providers post from a few addresses in bursts and authenticate by signature: never
    # throttled, and the hottest route skips the limiter's work.
    return request.path.startswith("/webhooks/")


_per_ip = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"],
    scope="password-checks-ip",
    key_func=_client_ip,
    methods=["POST"],
    deduct_when=_failed,
)
_per_account = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
    scope="password-checks-account",
    key_func=_account,
    methods=["POST"],
    deduct_when=_failed,
)


def password_checks(view: F) -> F:
    """Decorate a view whose POST checks a password: both limits apply (shared by every such
    view), and a failure counts once the view calls ``failed_password_check()``."""
    return _per_ip(_per_account(view))  # type: ignore[return-value]


def failed_password_check() -> None:
    """Count this request as a failed password check (against both limits)."""
    g.password_check_failed = True


def storage_uri(redis_url: str) -> str:
    """The ``limits`` storage URI for ``redis_url`` (it spells Unix sockets ``redis+unix``)."""
    if redis_url.startswith("unix://"):
        return "redis+" + redis_url
    return redis_url


def init_app(app: Flask) -> None:
    """Bind the limiter to ``app`` (Redis at ``REDIS_URL``) and answer 429s readably.

    Raises ValueError at start-up when a ``LOGIN_LIMIT_*`` setting is not a limit such as
    ``10/minute`` or ``5 per 30 seconds``.
    """
    for name in ("LOGIN_LIMIT_PER_IP", "LOGIN_LIMIT_PER_ACCOUNT"):
        try:
            parse_many(app.config[name])
        except ValueError as exc:
            raise ValueError(f"{name}={app.config[name]!r} is not a rate limit: {exc}") from exc
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_uri(app.config["REDIS_URL"]))
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", STORAGE_OPTIONS)
    limiter.init_app(app)
    app.register_error_handler(TooManyRequests, _too_many)


def _too_many(error: TooManyRequests) -> ResponseReturnValue:
    """The 429: ``Retry-After`` (seconds until the limit's window ends), and the form it came
    from with the wait in words; JSON for machines."""
    from app.accounts.auth import safe_next, wants_json
    from app.accounts.forms import LoginForm, PasswordForm

    try:
        limit = limiter.current_limit
        wait = max(1, int(limit.reset_at - time.time())) if limit else 60
    except Exception:  # the storage went away since the check: a refusal all the same
        wait = 60
    message = (
        f"Too many failed password attempts. Wait {wait} second{'s' if wait != 1 else ''}, "
        "then try again."
    )
    headers = {"Retry-After": str(wait)}
    if wants_json():
        return jsonify(error="too_many_requests", detail=message), 429, headers
    if request.endpoint == "accounts.login":
        next_url = safe_next(request.values.get("next"))
        page = render_template(
            "accounts/login.html", form=LoginForm(), error=message, next_url=next_url
        )
        return page, 429, headers
    if request.endpoint == "accounts.account":
        form = PasswordForm()
        form.current.errors = [message]
        return render_template("accounts/account.html", form=form), 429, headers
    return render_template("error.html", error=error), 429, headers
