"""Ingest route and the console pages for endpoints and deliveries.

The console's endpoint, command and deliveries-log views live in ``views_endpoints`` and
``views_deliveries`` (imported at the bottom so that they register on the blueprint).
"""

from __future__ import annotations

import json

from flask import abort, current_app, render_template, request

from app.accounts.auth import public, require_role
from app.extensions import db
from app.templating import htmx_response
from app.webhooks import bp
from app.webhooks.ingest import receive
from app.webhooks.models import Delivery
from app.webhooks.views_support import replay_refusal


@bp.post("/webhooks/<provider>/<endpoint_id>")
@public  # authenticated by the provider's signature
def ingest(provider: str, endpoint_id: str):
    """Receive one delivery; see ``ingest.receive`` for the answers. 413 for a body over
    ``MAX_CONTENT_LENGTH``, whether it says its length or comes chunked."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        abort(413, f"body is {request.content_length} bytes; the limit is {limit} bytes")
    # A chunked body has no length to check first, and Werkzeug stops reading one at the
    # limit without a word (the cut body would then fail its signature): read up to one
    # byte more, and refuse the body if that byte came.
    request.max_content_length = limit + 1
    body = request.get_data(cache=False)
    if len(body) > limit:
        abort(413, f"body is over the limit of {limit} bytes (sent without Content-Length)")
    receipt = receive(provider, endpoint_id, request.headers, body)
    # The body as bytes, straight: ``jsonify`` goes through the app's JSON provider, which
    # is measurable work on the hottest route for a two-field answer.
    return current_app.response_class(
        json.dumps(receipt.body), receipt.status, mimetype="application/json"
    )


@bp.get("/deliveries/<delivery_pk>")
@require_role("viewer")
def delivery(delivery_pk: str):
    """Console: one stored delivery, headers and raw body (full page or ``_delivery`` part)."""
    stored = db.get_or_404(Delivery, delivery_pk, description="no such delivery")
    template = "webhooks/_delivery.html" if request.htmx else "webhooks/delivery.html"
    return htmx_response(render_template(template, delivery=stored, replay_refusal=replay_refusal))


from app.webhooks import views_deliveries, views_endpoints  # noqa: E402, F401
