"""Handoffs: park or escalate a case with a snapshot; the queue and claiming (SPEC C5).

``service`` holds the rules (create, claim, queue; tests call them without HTTP), ``routes``
the modal, the queue page and the case page's panel, ``models`` the ``Handoff`` table.
"""

from flask import Blueprint

bp = Blueprint("handoffs", __name__)

from app.handoffs import models, routes, tasks  # noqa: E402, F401
