"""Receiving a delivery: verify, store, commit, enqueue, acknowledge (SPEC §3 steps 1-2).

Only that: everything else happens in the worker, so the route answers in milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import clock, metrics
from app.extensions import db
from app.ids import new_id
from app.logs import log
from app.webhooks import inbox
from app.webhooks.models import Delivery, Endpoint
from app.webhooks.payloads import parse_payload
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import PayloadError, VerificationError
from app.webhooks.secrets import SecretUnavailable, endpoint_secret

#: Header values never stored or logged: they are credentials.
REDACTED_HEADERS = frozenset({"authorization", "cookie", "x-gitlab-token"})
#: Refused requests keep at most this much body (bytes): enough to debug, not a storage sink.
REFUSED_BODY_LIMIT = 64 * 1024


#: How long a web process trusts what it read about an endpoint (seconds). Changes made in
#: this process are seen at once (``forget_endpoint``); other processes see them within this.
ENDPOINT_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class EndpointFacts:
    """What ingest needs of an endpoint, read once per ``ENDPOINT_CACHE_SECONDS``."""

    id: str
    provider: str
    enabled: bool
    path: str
    secret: str | None
    secret_problem: str | None


_endpoints: dict[tuple[str, str], tuple[float, EndpointFacts | None]] = {}


def endpoint_facts(endpoint_id: str) -> EndpointFacts | None:
    """The endpoint's provider, state and clear secret; None when there is no such endpoint.

    Cached per process for ``ENDPOINT_CACHE_SECONDS``: the lookup and the secret's
    decryption would otherwise be a third of the route's work.
    """
    # The configured URL, not ``db.engine.url.render_as_string()``: that costs more than
    # the rest of the lookup on a hit.
    key = (current_app.config["SQLALCHEMY_DATABASE_URI"], endpoint_id)
    now = time.monotonic()
    cached = _endpoints.get(key)
    if cached and now - cached[0] < ENDPOINT_CACHE_SECONDS:
        return cached[1]
    endpoint = db.session.get(Endpoint, endpoint_id)
    facts = None
    if endpoint is not None:
        try:
            secret, problem = endpoint_secret(endpoint), None
        except SecretUnavailable as exc:
            secret, problem = None, str(exc)
        facts = EndpointFacts(
            endpoint.id, endpoint.provider, endpoint.enabled, endpoint.path, secret, problem
        )
    if len(_endpoints) > 10_000:  # a flood of made-up ids must not grow this without bound
        _endpoints.clear()
    _endpoints[key] = (now, facts)
    return facts


def forget_endpoint(endpoint_id: str) -> None:
    """Drop this process's cached facts about an endpoint (ORM changes do it by themselves;
    call it after a bulk UPDATE or DELETE, which the ORM's events do not see)."""
    for key in [k for k in _endpoints if k[1] == endpoint_id]:
        _endpoints.pop(key, None)


@event.listens_for(Endpoint, "after_update")
@event.listens_for(Endpoint, "after_delete")
@event.listens_for(Endpoint, "after_insert")
def _forget(_mapper, _connection, endpoint: Endpoint) -> None:
    forget_endpoint(endpoint.id)


@dataclass
class Receipt:
    """What the route answers: an HTTP status and a JSON body."""

    status: int
    body: dict = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, error: str, detail: str) -> Receipt:
        return cls(status, {"error": error, "detail": detail})


#: The ``casehook_deliveries_received_total`` verdict of each answer (200 is split in two).
VERDICTS = {
    202: "accepted",
    401: "unauthorized",
    400: "rejected",
    404: "unknown_endpoint",
    410: "endpoint_disabled",
    503: "secret_unavailable",
}


def receive(
    provider_name: str, endpoint_id: str, headers: Mapping[str, str], body: bytes
) -> Receipt:
    """``_receive``, counted and timed for ``/metrics`` (a counter and a histogram: a few
    microseconds on the hot path)."""
    started = time.perf_counter()
    receipt = _receive(provider_name, endpoint_id, headers, body)
    if receipt.status == 200:
        verdict = "duplicate" if receipt.body.get("duplicate") else "connection_test"
    else:
        verdict = VERDICTS.get(receipt.status, str(receipt.status))
    provider = provider_name if get_provider(provider_name) is not None else "unknown"
    metrics.delivery_received(provider, verdict, time.perf_counter() - started)
    return receipt


def _receive(
    provider_name: str, endpoint_id: str, headers: Mapping[str, str], body: bytes
) -> Receipt:
    """Verify and store one request to ``/webhooks/<provider_name>/<endpoint_id>``.

    Answers (``Receipt.status``):
    - 202: stored, and a worker woken (or, if Redis is down, stored: the supervisor wakes one
      when Redis is back);
    - 200: a repeated delivery id, or a connection test (ping, challenge);
    - 404: unknown endpoint or provider; 410: endpoint disabled;
    - 401: a failed check, naming the header (stored, verdict ``unauthorized``);
    - 400: an authentic body that is not a JSON object or lacks a delivery id (stored,
      verdict ``rejected``);
    - 503: the endpoint's secret cannot be read.
    The size limit (413) is enforced by the route before this runs.
    """
    provider = get_provider(provider_name)
    endpoint = endpoint_facts(endpoint_id) if provider is not None else None
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
    if endpoint.secret is None:
        log.error("endpoint.secret_unavailable", endpoint_id=endpoint_id,
                  error=endpoint.secret_problem)  # fmt: skip
        return Receipt.error(503, "secret_unavailable", endpoint.secret_problem or "no secret")

    try:
        provider.verify(endpoint.secret, headers, body)
    except VerificationError as exc:
        _store_refused(endpoint.id, headers, body, "unauthorized", f"{exc.check}: {exc.detail}")
        return Receipt.error(401, exc.check, exc.detail)

    try:
        payload = parse_payload(headers, body)
        delivery_id = provider.stored_delivery_id(headers, payload)
    except PayloadError as exc:
        _store_refused(endpoint.id, headers, body, "rejected", str(exc))
        return Receipt.error(400, "bad_payload", str(exc))

    event_type = provider.stored_event_type(headers, payload)
    answer = provider.immediate_answer(event_type, payload)
    is_ping = answer is not None
    delivery_pk, endpoint_pk = new_id(), endpoint.id
    partition = inbox.partition_of(provider.ordering_key(event_type, payload) or endpoint_pk)
    # A Core insert with bound parameters (compiled once): this is the hot path, and the
    # ORM's unit of work would cost more than the insert itself.
    row = {
        "id": delivery_pk,
        "endpoint_id": endpoint_pk,
        "delivery_id": delivery_id,
        "event_type": event_type,
        "headers": _storable_headers(headers),
        "body": body,
        "received_at": clock.now(),
        "verdict": "accepted",
        "verdict_detail": None,
        "status": "processed" if is_ping else "received",
        "outcome": "answered at once: the provider tested the connection" if is_ping else None,
        "case_id": None,
        "processed_at": None,
        "processing_ms": None,
        "partition": partition,
        "attempts": 0,
        "next_attempt_at": None,
    }
    if not _insert(row):
        log.info("delivery.duplicate", delivery_id=delivery_id, endpoint_id=endpoint_pk)
        return Receipt(
            200,
            {
                "delivery_id": delivery_id,
                "duplicate": True,
                "detail": "delivery already received; not processed again",
            },
        )
    if is_ping:
        log.info("delivery.connection_test", delivery_pk=delivery_pk, delivery_id=delivery_id,
                 endpoint_id=endpoint_pk, event_type=event_type)  # fmt: skip
        return Receipt(200, {"delivery_id": delivery_id, **answer})
    inbox.wake_soon(partition)
    log.info(
        "delivery.received",
        delivery_pk=delivery_pk,
        delivery_id=delivery_id,
        endpoint_id=endpoint_pk,
        event_type=event_type,
    )
    return Receipt(202, {"delivery_id": delivery_id})


#: Seconds a connection of the ingest engine lives before it is replaced.
HOT_POOL_RECYCLE = 300


@dataclass(frozen=True)
class _HotInsert:
    """The delivery INSERT, compiled once per database for its engine's DBAPI connections:
    SQL text, parameter order (None: named parameters) and the columns' bind processors
    (SQLAlchemy's own, so values are stored exactly as the ORM stores them). ``engine``:
    the autocommit engine, None on SQLite (the app's own engine), where ``group`` writes
    concurrent deliveries together (``_GroupCommit``)."""

    engine: Engine | None
    sql: str
    order: tuple[str, ...] | None
    processors: dict[str, Callable[[Any], Any]]
    group: _GroupCommit | None = None

    def parameters(self, row: dict[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        processors = self.processors
        values = {k: processors[k](v) if k in processors else v for k, v in row.items()}
        return values if self.order is None else tuple(values[k] for k in self.order)


_hot_inserts: dict[str, _HotInsert] = {}


def _hot_engine() -> Engine:
    """The engine the delivery INSERT runs on.

    SQLite: the app's engine. Elsewhere a second engine on the same database, in autocommit
    and without ``pool_pre_ping``: the INSERT is one round trip, where the app's engine
    spends four (ping, BEGIN, INSERT, COMMIT). A connection that died meanwhile is caught
    by ``_insert``'s retry instead of a ping on every checkout.
    """
    return _hot_insert().engine or db.engine


def _hot_insert() -> _HotInsert:
    key = current_app.config["SQLALCHEMY_DATABASE_URI"]
    hot = _hot_inserts.get(key)
    if hot is None:
        engine = app_engine = db.engine
        if engine.dialect.name != "sqlite":
            engine = create_engine(
                engine.url,
                isolation_level="AUTOCOMMIT",
                pool_pre_ping=False,
                pool_recycle=HOT_POOL_RECYCLE,
            )
        dialect, table = engine.dialect, Delivery.__table__
        compiled = table.insert().compile(dialect=dialect)
        processors = {}
        for column in table.columns:
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[column.key] = processor
        order = tuple(compiled.positiontup) if compiled.positional else None
        group = None
        if dialect.name == "sqlite":
            ignoring = sqlite_insert(table).on_conflict_do_nothing().compile(dialect=dialect)
            assert tuple(ignoring.positiontup or ()) == order  # the same parameters
            group = _GroupCommit(ignoring.string)
        hot = _hot_inserts[key] = _HotInsert(
            None if engine is app_engine else engine, compiled.string, order, processors, group
        )
    return hot


def _insert(row: dict[str, Any]) -> bool:
    """Store the delivery row, committed; False when its id is taken (a repeated delivery).

    Straight on the DBAPI connection: one execute and a commit (nothing to send on
    Postgres, in autocommit), without SQLAlchemy's execution machinery, which cost more
    CPU than the driver's work. On SQLite, deliveries that arrive while another thread of
    this process is writing share its next transaction (``_GroupCommit``).
    """
    hot = _hot_insert()
    engine = hot.engine or db.engine
    parameters = hot.parameters(row)
    if hot.group is not None:
        return hot.group.insert(engine, hot, parameters)
    return _insert_one(engine, hot, parameters)


def _insert_one(engine: Engine, hot: _HotInsert, parameters: Any) -> bool:
    """One delivery in its own transaction (autocommit on Postgres). A pooled connection
    that turns out dead (the database restarted) is dropped and the INSERT tried once more
    on a fresh one."""
    dialect = engine.dialect
    for attempt in (1, 2):
        connection = engine.raw_connection()
        cursor = None
        try:
            cursor = connection.cursor()
            cursor.execute(hot.sql, parameters)
            cursor.close()
            connection.commit()  # nothing to do in autocommit; SQLite's transaction
            return True
        except dialect.loaded_dbapi.IntegrityError:
            return False
        except dialect.loaded_dbapi.Error as exc:
            if attempt == 2 or not dialect.is_disconnect(exc, connection.dbapi_connection, cursor):
                raise
            connection.invalidate(exc)
            log.warning("delivery.insert_retried", error=str(exc)[:200])
        finally:
            connection.close()  # back to the pool (rolled back there if still open)
    raise AssertionError("unreachable")


@dataclass(eq=False)
class _Waiting:
    """A delivery waiting for a group's transaction (or to lead the next one)."""

    parameters: Any
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    stored: bool | None = None
    error: BaseException | None = None

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        assert self.stored is not None
        return self.stored


class _GroupCommit:
    """Group commit on SQLite: the deliveries a web process's threads store at the same time
    go into one transaction.

    SQLite pays per transaction (the write lock, which the web processes take in turn, and
    the WAL frames of the pages every row touches), so a commit shared by a few rows costs
    each well under half. No request waits for anything but its own row's commit: the
    first thread to arrive writes what is queued, including its own row, commits, and
    hands the lead to the first thread that queued meanwhile. Repeated delivery ids are
    told by ``ON CONFLICT DO NOTHING`` (rowcount 0), so one does not spoil its group; any
    error rolls the group back and its rows are stored one by one (``_insert_one``), each
    with its own outcome.
    """

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._leading = False

    def insert(self, engine: Engine, hot: _HotInsert, parameters: Any) -> bool:
        mine = _Waiting(parameters)
        with self._lock:
            self._queue.append(mine)
            lead, self._leading = not self._leading, True
        if not lead:
            mine.done.wait()
            if not mine.lead:
                return mine.outcome()
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._write(engine, hot, batch)
        finally:
            with self._lock:
                if self._queue:  # queued while we wrote: the first of them leads next
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._leading = False
        return mine.outcome()

    def _write(self, engine: Engine, hot: _HotInsert, batch: list[_Waiting]) -> None:
        try:
            connection = engine.raw_connection()
            try:
                cursor = connection.cursor()
                stored = []
                for waiting in batch:
                    cursor.execute(self.sql, waiting.parameters)
                    stored.append(cursor.rowcount == 1)
                cursor.close()
                connection.commit()
            finally:
                connection.close()  # back to the pool (rolled back there if still open)
            for waiting, was_stored in zip(batch, stored, strict=True):
                waiting.stored = was_stored
        except Exception:
            for waiting in batch:  # each on its own: one row's failure is its own
                try:
                    waiting.stored = _insert_one(engine, hot, waiting.parameters)
                except Exception as exc:
                    waiting.error = exc
        finally:
            for waiting in batch:
                waiting.done.set()


def _store_refused(
    endpoint_id: str, headers: Mapping[str, str], body: bytes, verdict: str, detail: str
) -> None:
    # No delivery_id: a refused request must not reserve the id of a real one.
    db.session.add(
        Delivery(
            endpoint_id=endpoint_id,
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
    log.info("delivery.refused", endpoint_id=endpoint_id, verdict=verdict, detail=detail)


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
        original.status, original.next_attempt_at = "received", None
        db.session.commit()
        inbox.wake(original.partition, force=True)
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
        # The id people know (the provider's), not our primary key.
        verdict_detail=f"replay of {original.delivery_id}",
        status="received",
        partition=original.partition,
    )
    db.session.add(replay)
    db.session.commit()
    inbox.wake(replay.partition, force=True)
    log.info("delivery.replayed", delivery_pk=replay.id, replay_of=original.id)
    return replay
