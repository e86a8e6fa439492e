"""Branch map: hypotheses forked from a case's root branch, with notes (SPEC C4)."""

from flask import Blueprint

bp = Blueprint("branches", __name__)
