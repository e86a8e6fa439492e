"""Ingest route and the console pages for endpoints and deliveries.

The console's endpoint, command and deliveries-log views live in ``views_endpoints`` and
``views_deliveries`` (imported at the bottom so that they register on the blueprint).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from flask import Flask, current_app, render_template, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_content_length, get_input_stream

from app.accounts.auth import public, require_role
from app.extensions import db
from app.templating import htmx_response
from app.webhooks import bp
from app.webhooks.ingest import receive
from app.webhooks.models import Delivery
from app.webhooks.views_support import replay_refusal

#: ``/webhooks/<provider>/<endpoint_id>`` as Flask's default converter reads it.
INGEST_PATH = re.compile(r"/webhooks/([^/]+)/([^/]+)\Z")
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


@bp.post("/webhooks/<provider>/<endpoint_id>")
@public  # authenticated by the provider's signature
def ingest(provider: str, endpoint_id: str):
    """Receive one delivery (``answer``). Requests reach this view only when ``IngestFastPath``
    is not in front of the app: it is registered so that Flask knows the rule (a GET is a
    405, not a 404)."""
    status, body = answer(provider, endpoint_id, request.environ)
    return current_app.response_class(body, status, mimetype="application/json")


def answer(provider: str, endpoint_id: str, environ: dict[str, Any]) -> tuple[int, bytes]:
    """Read the body and receive the delivery (``ingest.receive``, which says the answers):
    ``(status, JSON body)``. Raises ``RequestEntityTooLarge`` for a body over
    ``MAX_CONTENT_LENGTH``, whether it says its length or comes chunked. Needs an app
    context, not a request context."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise RequestEntityTooLarge(f"body is {length} bytes; the limit is {limit} bytes")
    # A chunked body has no length to check first, and Werkzeug stops reading one at the
    # limit without a word (the cut body would then fail its signature): read up to one
    # byte more, and refuse the body if that byte came.
    try:
        body = get_input_stream(environ, max_content_length=limit + 1).read()
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        raise RequestEntityTooLarge(
            f"body is over the limit of {limit} bytes (sent without Content-Length)"
        )
    receipt = receive(provider, endpoint_id, EnvironHeaders(environ), body)
    # The body as bytes, straight: ``jsonify`` goes through the app's JSON provider, which
    # is measurable work on the hottest route for a two-field answer.
    return receipt.status, json.dumps(receipt.body).encode()


class IngestFastPath:
    """WSGI middleware: ``POST /webhooks/<provider>/<endpoint_id>`` answered in an app
    context, without Flask's request context and hooks.

    The route uses none of what they do for the console: the session, login and CSRF
    checks, the login throttle, the NUL check and the security headers all skip
    ``/webhooks/``, yet building the request context and running the hooks cost about a
    quarter of the route's CPU. Every other request goes to Flask, and so does an
    exception raised here (413 included): Flask's error handlers answer it as they would
    have from the view.
    """

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        match = (
            INGEST_PATH.match(environ.get("PATH_INFO") or "")
            if environ.get("REQUEST_METHOD") == "POST"
            else None
        )
        if match is None:
            return self.wsgi_app(environ, start_response)
        # WSGI paths are latin-1 strings of the URL's bytes; Flask reads them as UTF-8.
        provider, endpoint_id = (
            part.encode("latin-1").decode(errors="replace") for part in match.groups()
        )
        with self.app.app_context():
            try:
                status, body = answer(provider, endpoint_id, environ)
            except Exception as exc:
                return self._through_flask(exc, environ, start_response)
        start_response(
            _STATUS_LINES[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _through_flask(
        self, exc: Exception, environ: dict[str, Any], start_response: Callable
    ) -> Iterable[bytes]:
        """Answer ``exc`` as Flask answers an exception from a view (call it while ``exc``
        is being handled: Flask re-raises it when exceptions propagate, as in tests)."""
        app = self.app
        with app.request_context(environ):
            try:
                response = app.finalize_request(app.handle_user_exception(exc))
            except Exception as error:
                response = app.handle_exception(error)
            return response(environ, start_response)


def init_app(app: Flask) -> None:
    """Put ``IngestFastPath`` in front of the app (before ``ProxyFix``, which wraps it)."""
    app.wsgi_app = IngestFastPath(app, app.wsgi_app)  # type: ignore[method-assign]


@bp.get("/deliveries/<delivery_pk>")
@require_role("viewer")
def delivery(delivery_pk: str):
    """Console: one stored delivery, headers and raw body (full page or ``_delivery`` part)."""
    stored = db.get_or_404(Delivery, delivery_pk, description="no such delivery")
    template = "webhooks/_delivery.html" if request.htmx else "webhooks/delivery.html"
    return htmx_response(render_template(template, delivery=stored, replay_refusal=replay_refusal))


from app.webhooks import views_deliveries, views_endpoints  # noqa: E402, F401
