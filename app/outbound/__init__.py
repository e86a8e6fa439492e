"""Outbound webhooks (SPEC C7): subscriptions receive case events signed the Standard
Webhooks way, retried on Svix's schedule, with every attempt logged.

- ``models.py``: ``Subscription``, ``OutboundMessage``; ``service.py``: the domain rules;
- ``events.py``: the case event subscriber that queues messages; ``sender.py``: the
  ``outbound.send`` task kind; ``app/net.py``: the SSRF guard;
- ``routes.py``: the console; ``app/api/subscriptions.py``: the JSON API; ``cli.py``.
"""

from flask import Blueprint

bp = Blueprint("outbound", __name__)

from app.outbound import events, models, routes, sender  # noqa: E402, F401
