"""Resolution outputs and the writers that compose every generated text (SPEC C6)."""

from flask import Blueprint

bp = Blueprint("outputs", __name__)
