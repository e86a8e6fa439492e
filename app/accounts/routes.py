"""Login and logout, the user's own account and API tokens, and user management (admins)."""

from __future__ import annotations

from typing import Any

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from app.accounts import bp, service, throttle
from app.accounts.auth import public, require_role, safe_next
from app.accounts.forms import LoginForm, NotificationsForm, PasswordForm, TokenForm, UserForm
from app.accounts.models import ROLES, ApiToken, User
from app.extensions import db
from app.templating import page_or_fragment

BAD_CREDENTIALS = "That email and password do not match an active account."


def _me() -> User:
    """The signed-in user as a model object (``current_user`` is a proxy)."""
    return current_user._get_current_object()  # type: ignore[attr-defined]


@bp.route("/login", methods=["GET", "POST"])
@public
@throttle.password_checks
def login():
    """The sign-in form. Bad credentials: ``401`` and one message that does not say which
    part was wrong; too many of them (per IP, per account): ``429`` saying how long to wait.
    With no users at all, it says how to create the first admin."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("cases.index"))
    form = LoginForm()
    error, status = None, 200
    if form.validate_on_submit():
        user = service.authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user, remember=form.remember.data)
            return redirect(next_url or url_for("cases.index"))
        throttle.failed_password_check()
        error, status = BAD_CREDENTIALS, 401
    elif form.is_submitted():
        status = 422
    no_users = service.user_count() == 0
    return (
        render_template(
            "accounts/login.html", form=form, error=error, next_url=next_url, no_users=no_users
        ),
        status,
    )


@bp.post("/logout")
@public
def logout():
    """Sign out (a POST with the CSRF token, so another site cannot sign you out)."""
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("accounts.login"))


@bp.route("/account", methods=["GET", "POST"])
@require_role("viewer")
@throttle.password_checks
def account():
    """Your email and role, and a form to change your password (a wrong current password
    counts against the sign-in limits of this account and address)."""
    form = PasswordForm()
    status = 200
    if form.validate_on_submit():
        me = _me()
        try:
            service.change_password(me, form.current.data, form.new.data)
        except service.AccountError as exc:
            if isinstance(exc, service.WrongPassword):
                throttle.failed_password_check()
            form.current.errors.append(str(exc))
        else:
            # The new password signs out every session of the user (User.get_id); renew
            # this one.
            login_user(me)
            flash("Password changed. Your other sessions are signed out.")
            return redirect(url_for("accounts.account"))
    if form.errors:
        status = 422
    return _account_page(form=form), status


def _account_page(**forms: Any) -> str:
    forms.setdefault("form", PasswordForm(formdata=None))
    forms.setdefault("notify_form", NotificationsForm(desktop=_me().notify_desktop, formdata=None))
    return render_template("accounts/account.html", **forms)


@bp.post("/account/notifications")
@require_role("viewer")
def notifications():
    """Turn desktop notifications on or off (field ``desktop``; the browser's own permission
    is asked by static/console.js when the box is ticked)."""
    form = NotificationsForm()
    if not form.validate_on_submit():
        return _account_page(notify_form=form), 422
    service.set_desktop_notifications(_me(), form.desktop.data)
    flash(
        "Desktop notifications are on for this account."
        if form.desktop.data
        else "Desktop notifications are off."
    )
    return redirect(url_for("accounts.account"), code=303)


def _tokens(form: TokenForm | None = None, new_token: str | None = None, status: int = 200):
    return page_or_fragment(
        "accounts/tokens.html",
        "accounts/_tokens.html",
        status,
        tokens=_me().tokens,
        form=form or TokenForm(formdata=None),
        new_token=new_token,
    )


@bp.get("/account/tokens")
@require_role("viewer")
def tokens():
    """Your API tokens: name, prefix, created, last used, revoked."""
    return _tokens()


@bp.post("/account/tokens")
@require_role("viewer")
def create_token():
    """Create a token; the answer shows it this once (then only its prefix)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _tokens(form, status=422)
    try:
        _, clear = service.create_token(_me(), form.name.data)
    except service.AccountError as exc:
        form.name.errors = [str(exc)]
        return _tokens(form, status=422)
    return _tokens(new_token=clear)


@bp.post("/account/tokens/<int:token_id>/revoke")
@require_role("viewer")
def revoke_token(token_id: int):
    """Revoke one of your tokens (idempotent)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != _me().id:
        abort(404, description=f"you have no token {token_id}")
    service.revoke_token(token)
    if not request.htmx:
        flash(f"Token {token.name!r} revoked.")
        return redirect(url_for("accounts.tokens"))
    return _tokens()


def _users(
    form: UserForm | None = None,
    created: tuple[User, str] | None = None,
    error: str | None = None,
    status: int = 200,
):
    users = db.session.scalars(db.select(User).order_by(User.created_at, User.id)).all()
    from app.events.sync import status_line

    return page_or_fragment(
        "accounts/users.html",
        "accounts/_users.html",
        status,
        users=users,
        roles=ROLES,
        sync_line=status_line(),
        form=form or UserForm(formdata=None),
        created=created,
        error=error,
    )


@bp.get("/admin/users")
@require_role("admin")
def users():
    """Users and their roles: create, change role, deactivate or reactivate."""
    return _users()


@bp.post("/admin/users")
@require_role("admin")
def create_user():
    """Create a user; a generated password is shown this once."""
    form = UserForm()
    if not form.validate_on_submit():
        return _users(form, status=422)
    generated = not form.password.data
    try:
        user, password = service.create_user(
            form.email.data, form.role.data, form.password.data or None
        )
    except service.AccountError as exc:
        form.email.errors = [str(exc)]
        return _users(form, status=422)
    return _users(created=(user, password if generated else ""))


def _change_user(user_id: int, change) -> Any:
    user = db.get_or_404(User, user_id, description=f"there is no user {user_id}")
    try:
        change(user)
    except service.AccountError as exc:
        if not request.htmx:
            flash(str(exc), "error")
            return redirect(url_for("accounts.users"))
        return _users(error=str(exc), status=422)
    if not request.htmx:
        return redirect(url_for("accounts.users"))
    return _users()


@bp.post("/admin/users/<int:user_id>/role")
@require_role("admin")
def set_role(user_id: int):
    """Change a user's role (form field ``role``). Not your own; not the last admin's."""
    role = request.form.get("role", "")
    return _change_user(user_id, lambda user: service.set_role(user, role, by=_me()))


@bp.post("/admin/users/<int:user_id>/active")
@require_role("admin")
def set_active(user_id: int):
    """Deactivate (``active=0``) or reactivate (``active=1``) a user."""
    active = request.form.get("active") == "1"
    return _change_user(user_id, lambda user: service.set_active(user, active, by=_me()))
