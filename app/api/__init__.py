"""The JSON API for integrations and scripts."""

from flask import Blueprint

# Every view says the role it needs with ``require_role``; scripts authenticate with a
# bearer token, the console's browser with its session (and, on writes, the CSRF token).
bp = Blueprint("api", __name__, url_prefix="/api")

from app.api import (  # noqa: E402, F401
    agents,
    branches,
    cases,
    deliveries,
    docs,
    endpoints,
    events,
    handoffs,
    me,
    outputs,
    subscriptions,
)
