"""Handoffs: park or escalate a case with a snapshot; the queue and claiming (SPEC C5)."""

from flask import Blueprint

bp = Blueprint("handoffs", __name__)
