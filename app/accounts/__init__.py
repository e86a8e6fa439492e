"""Accounts (SPEC C10): users and roles, console login, API tokens, and the one access rule.

``auth.require_role`` guards views; ``service`` holds the rules (create, authenticate, roles,
tokens); ``routes`` the login and account pages; ``cli`` ``flask users`` and ``flask tokens``.
"""

from flask import Blueprint

bp = Blueprint("accounts", __name__)

from app.accounts import routes  # noqa: E402, F401
