"""The JSON API for integrations and scripts."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from app.api import cases  # noqa: E402, F401
