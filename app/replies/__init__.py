"""Replies to the source (SPEC C7): a case answers the issue, thread or incident it came from.

- ``app/webhooks/reply_settings.py``: each endpoint's reply settings (``settings.reply``:
  API base URL, a token kept encrypted or named by an environment variable, provider
  options), checked and shown without the token;
- ``tasks``: a reply is a task (kind ``replies.post``) created in the transaction that asks
  for it (the case page, the ``comment`` command action); the worker posts it through the
  provider module's ``reply`` with no transaction open, records the status, latency and an
  excerpt of the answer on the attempt, retries failures, waits as long as a rate limit
  asks, and writes ``case.replied`` (posted, with a link, or failed, with why) on the case;
- ``routes``: the case page's **Reply to source** panel.

What a reply needs to find its place (repository and number, channel and thread, ...) is
the provider's ``reply_target``, kept on the case (``Case.source``) when it opens.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("replies", __name__)

from app.replies import routes  # noqa: E402,F401  (registers the routes and the panel)
