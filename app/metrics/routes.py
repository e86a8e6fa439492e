"""``GET /metrics``: the Prometheus text format, every process's counts added up."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from app.metrics import DIRECTORY
from app.metrics.collect import DatabaseCollector

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """The metrics (``text/plain; version=0.0.4``, or OpenMetrics when asked for). With
    ``METRICS_TOKEN`` set, a request without ``Authorization: Bearer <token>`` gets 401;
    unset, anyone may read them (keep the route off the internet then)."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return Response(
                "a bearer token is needed: Authorization: Bearer <CASEHOOK_METRICS_TOKEN>\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
            )
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(DIRECTORY))
    registry.register(DatabaseCollector())
    # The format the scraper asks for (Accept); the classic text format by default.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), 200, {"Content-Type": content_type})
