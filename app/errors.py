"""One base class for refusals of the domain, and the one handler that answers them.

A domain function raises a ``DomainError`` subclass (``TransitionError``, ``CaseInputError``,
``SubscriptionError``, ...) saying the HTTP ``status``, the ``error`` slug and, when one input
is at fault, its ``field``. Routes that have nothing better to do let it escape: the handler
registered by ``init_app`` answers ``{"error", "detail", "field"?}`` (plus ``extra()``) to API
and JSON clients and the error page to people. Console views that re-render a form with the
message still catch the exception themselves.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Flask, jsonify, render_template, request


class DomainError(Exception):
    """A refusal with an HTTP ``status``, an ``error`` slug, a ``detail`` sentence (the
    message) and the ``field`` at fault (None when it is not one input's).

    Subclasses set ``status`` and ``error`` as class attributes; an instance may override
    them (``DomainError("...", status=409, error="taken")``).
    """

    status: int = 400
    error: str = "invalid_input"
    field: str | None = None
    #: Response headers (e.g. ``WWW-Authenticate`` on a 401).
    headers: dict[str, str] | None = None

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        error: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if headers is not None:
            self.headers = headers
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
        if field is not None:
            self.field = field

    def extra(self) -> dict[str, Any]:
        """Keys the answer carries besides ``error``/``detail``/``field`` (e.g. ``allowed``)."""
        return {}

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"error", "detail", "field"?, **extra()}``."""
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.field:
            body["field"] = self.field
        return {**body, **self.extra()}


def wants_json() -> bool:
    """True for machines: the API, inbound webhooks, and clients that prefer JSON."""
    return request.path.startswith(("/api/", "/webhooks/")) or (
        request.accept_mimetypes.best == "application/json"
    )


def handle_domain_error(exc: DomainError):
    """The one handler: JSON for machines, the error page for people. The transaction the
    refusal interrupted is rolled back first, so nothing half-done is committed later."""
    from app.extensions import db

    db.session.rollback()
    if wants_json():
        return jsonify(exc.body()), exc.status, exc.headers or {}
    # What error.html shows: code, name, description (as for an HTTPException).
    name = exc.error.replace("_", " ").capitalize()
    page = SimpleNamespace(code=exc.status, name=name, description=exc.detail)
    return render_template("error.html", error=page), exc.status, exc.headers or {}


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
