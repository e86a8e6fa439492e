"""Receiving a delivery: verify, store, commit, enqueue, acknowledge (SPEC §3 steps 1-2).

Only that: everything else happens in the worker, so the route answers in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.logs import log
from app.webhooks.jobs import enqueue_processing
from app.webhooks.models import Delivery, Endpoint
from app.webhooks.payloads import parse_payload
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.secrets import SecretUnavailable, endpoint_secret

#: Header values never stored or logged: they are credentials.
REDACTED_HEADERS = frozenset({"authorization", "cookie", "x-gitlab-token"})
#: Refused requests keep at most this much body (bytes): enough to debug, not a storage sink.
REFUSED_BODY_LIMIT = 64 * 1024


@dataclass
class Receipt:
    """What the route answers: an HTTP status and a JSON body."""

    status: int
    body: dict = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, error: str, detail: str) -> Receipt:
        return cls(status, {"error": error, "detail": detail})


def receive(
    provider_name: str, endpoint_id: str, headers: Mapping[str, str], body: bytes
) -> Receipt:
    """Verify and store one request to ``/webhooks/<provider_name>/<endpoint_id>``.

    Answers (``Receipt.status``):
    - 202: stored and enqueued (or stored, to be swept later, if Redis is down);
    - 200: a repeated delivery id, or a connection test (ping, challenge);
    - 404: unknown endpoint or provider; 410: endpoint disabled;
    - 401: a failed check, naming the header (stored, verdict ``unauthorized``);
    - 400: an authentic body that is not a JSON object or lacks a delivery id (stored,
      verdict ``rejected``);
    - 503: the endpoint's secret cannot be read.
    The size limit (413) is enforced by the route before this runs.
    """
    provider = get_provider(provider_name)
    endpoint = db.session.get(Endpoint, endpoint_id)
    if provider is None or endpoint is None:
        return Receipt.error(404, "unknown_endpoint", f"no {provider_name} endpoint {endpoint_id}")
    if endpoint.provider != provider_name:
        return Receipt.error(
            404,
            "wrong_provider",
            f"endpoint {endpoint_id} is a {endpoint.provider} endpoint; post to {endpoint.path}",
        )
    if not endpoint.enabled:
        return Receipt.error(410, "endpoint_disabled", f"endpoint {endpoint_id} is disabled")
    try:
        secret = endpoint_secret(endpoint)
    except SecretUnavailable as exc:
        log.error("endpoint.secret_unavailable", endpoint_id=endpoint_id, error=str(exc))
        return Receipt.error(503, "secret_unavailable", str(exc))

    try:
        provider.verify(secret, headers, body)
    except VerificationError as exc:
        _store_refused(endpoint, headers, body, "unauthorized", f"{exc.check}: {exc.detail}")
        return Receipt.error(401, exc.check, exc.detail)

    try:
        payload = parse_payload(headers, body)
        delivery_id = provider.delivery_id(headers, payload)
    except PayloadError as exc:
        _store_refused(endpoint, headers, body, "rejected", str(exc))
        return Receipt.error(400, "bad_payload", str(exc))

    event_type = provider.event_type(headers, payload)
    answer = provider.immediate_answer(event_type, payload)
    is_ping = answer is not None
    delivery = Delivery(
        endpoint_id=endpoint.id,
        delivery_id=delivery_id,
        event_type=event_type,
        headers=_storable_headers(headers),
        body=body,
        verdict="accepted",
        status="processed" if is_ping else "received",
        outcome="answered at once: the provider tested the connection" if is_ping else None,
    )
    db.session.add(delivery)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return Receipt(
            200,
            {
                "delivery_id": delivery_id,
                "duplicate": True,
                "detail": "delivery already received; not processed again",
            },
        )
    if is_ping:
        return Receipt(200, {"delivery_id": delivery_id, **answer})
    queued = enqueue_processing(delivery.id)
    log.info(
        "delivery.received",
        delivery_pk=delivery.id,
        delivery_id=delivery_id,
        endpoint_id=endpoint.id,
        event_type=event_type,
        queued=queued,
    )
    return Receipt(202, {"delivery_id": delivery_id})


def _store_refused(
    endpoint: Endpoint, headers: Mapping[str, str], body: bytes, verdict: str, detail: str
) -> None:
    # No delivery_id: a refused request must not reserve the id of a real one.
    db.session.add(
        Delivery(
            endpoint_id=endpoint.id,
            delivery_id=None,
            event_type="",
            headers=_storable_headers(headers),
            body=body[:REFUSED_BODY_LIMIT],
            verdict=verdict,
            verdict_detail=detail,
            status="refused",
        )
    )
    db.session.commit()
    log.info("delivery.refused", endpoint_id=endpoint.id, verdict=verdict, detail=detail)


def _storable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: ("[redacted]" if name.lower() in REDACTED_HEADERS else value[:8192])
        for name, value in headers.items()
    }


def replay_delivery(original: Delivery) -> Delivery:
    """Process a stored delivery again, as it came, and return the delivery that will run.

    A delivery that never finished (``received`` or ``failed``) is simply enqueued again.
    A processed one is copied into a new delivery (``<delivery id>#replay-<n>``) so the log
    keeps both; its commands run again over the same cases, so what is keyed by dedup key
    updates the case rather than opening a second one. Refused deliveries cannot be
    replayed (``ValueError``): they were never authentic.
    """
    if original.verdict != "accepted":
        raise ValueError(f"delivery was {original.verdict}: only accepted deliveries replay")
    if original.status in ("received", "failed"):
        enqueue_processing(original.id)
        return original
    siblings = db.session.scalar(
        db.select(db.func.count(Delivery.id)).where(
            Delivery.endpoint_id == original.endpoint_id,
            Delivery.delivery_id.like(f"{original.delivery_id}#replay-%"),
        )
    )
    replay = Delivery(
        endpoint_id=original.endpoint_id,
        delivery_id=f"{original.delivery_id}#replay-{(siblings or 0) + 1}"[:200],
        event_type=original.event_type,
        headers=original.headers,
        body=original.body,
        verdict="accepted",
        verdict_detail=f"replay of {original.id}",
        status="received",
    )
    db.session.add(replay)
    db.session.commit()
    enqueue_processing(replay.id)
    log.info("delivery.replayed", delivery_pk=replay.id, replay_of=original.id)
    return replay
