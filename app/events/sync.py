"""Sync: send every case event, in order, to ``CASEHOOK_SYNC_URL``.

Each batch is ``POST {"node_id", "events": [event...]}`` (≤ ``SYNC_BATCH_SIZE`` events,
oldest first, ``Authorization: Bearer CASEHOOK_SYNC_TOKEN`` when set). The cursor (the last
event the target acknowledged) lives in ``sync_state`` and moves only after a 2xx, with a
compare-and-set on the old value; so a sender that dies mid-batch (``kill -9``) leaves the
cursor where it was and the same batch is sent again: at least once, and the receiver
dedupes by event id. Nothing is skipped, and nothing but the batch in flight is sent twice.

Pacing, all in ``sync_state`` so that it survives restarts:

* after a successful batch the next one waits ``SYNC_INTERVAL_SECONDS`` (5): at most one
  batch per 5 s;
* after a failed one (network error, timeout, non-2xx) the wait is exponential backoff
  ``0.5 s * 2^(failures-1)``, capped at 30 s, times a random 1.0-1.25 (jitter, so that many
  installations do not retry in step), never over the cap;
* a 401 is an authentication problem: logged (``sync.auth_failed``), and nothing is sent
  again until the URL or token changes (their fingerprint is kept), or ``flask sync now``.

Who sends: the supervisor's tick (``schedule``) creates one ``sync.batch`` task (deduped,
concurrency 1) when events are pending and the next attempt is due; a worker runs it
(``send_batch``). ``flask sync now`` sends one batch at once from the command line.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import Any

import httpx
from flask import current_app
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import clock
from app.events import clock as node_clock
from app.events import stream
from app.events.models import SyncState
from app.extensions import db
from app.logs import log
from app.tasks import create_task, task_kind

KIND = "sync.batch"
_state = SyncState.__table__
#: The jitter's source; tests replace it with a seeded ``random.Random``.
rng: random.Random = random.Random()


def configured() -> bool:
    return bool(current_app.config.get("SYNC_URL"))


def fingerprint() -> str:
    """A hash of the target URL and token: a 401 blocks sending until it changes."""
    config = current_app.config
    material = f"{config.get('SYNC_URL') or ''}\0{config.get('SYNC_TOKEN') or ''}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def backoff_seconds(failures: int, random_source: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (≥ 1): 0.5, 1, 2, 4, ...
    up to 30, each times a random 1.0-1.25, never over 30."""
    config = current_app.config
    start, cap = float(config["SYNC_BACKOFF_START"]), float(config["SYNC_BACKOFF_MAX"])
    base = min(cap, start * 2 ** max(0, failures - 1))
    return min(cap, base * (random_source or rng).uniform(1.0, 1.25))


def load_state() -> SyncState:
    """The ``sync_state`` row (created if missing), in the session."""
    state = db.session.get(SyncState, 1)
    if state is None:
        insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
        db.session.execute(
            insert(_state)
            .values(id=1, cursor_seq=0, failures=0, sent=0)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        state = db.session.get(SyncState, 1)
    return state


def _iso(moment: datetime | None) -> str | None:
    from app.templating import as_utc

    return as_utc(moment).isoformat() if moment else None


def status() -> dict[str, Any]:
    """``{"pending", "cursor", "last_success_at", "last_error", "last_error_at",
    "next_attempt_at", "enabled", "auth_blocked", "sent"}``; times ISO 8601 UTC, ``cursor``
    the last acknowledged event's id (None: nothing sent yet), ``next_attempt_at`` None when
    nothing is scheduled (off, blocked by a 401)."""
    state = load_state()
    blocked = state.auth_blocked is not None and state.auth_blocked == fingerprint()
    info = {
        "pending": stream.pending_after(state.cursor_seq),
        "cursor": state.cursor_event_id,
        "last_success_at": _iso(state.last_success_at),
        "last_error": state.last_error,
        "last_error_at": _iso(state.last_error_at),
        "next_attempt_at": None if blocked or not configured() else _iso(state.next_attempt_at),
        "enabled": configured(),
        "auth_blocked": blocked,
        "sent": state.sent,
    }
    db.session.commit()
    return info


def status_line(info: dict[str, Any] | None = None) -> str:
    """One sentence for the admin page."""
    info = info or status()
    if not info["enabled"]:
        return "Event sync is off (set CASEHOOK_SYNC_URL to send events to another system)."
    parts = [f"{info['pending']} events pending"]
    parts.append(f"last success {info['last_success_at']}" if info["last_success_at"]
                 else "nothing sent yet")  # fmt: skip
    if info["auth_blocked"]:
        parts.append("stopped: the target refused our token (401); fix CASEHOOK_SYNC_TOKEN")
    elif info["last_error"] and (info["last_error_at"] or "") > (info["last_success_at"] or ""):
        parts.append(f"last error {info['last_error_at']}: {info['last_error']}")
    return "Event sync: " + "; ".join(parts) + "."


def schedule() -> int:
    """Supervisor step: make sure a ``sync.batch`` task is queued when events are pending,
    due at the state's ``next_attempt_at``; returns 1 when one was created, else 0."""
    if not configured():
        return 0
    state = load_state()
    if state.auth_blocked and state.auth_blocked == fingerprint():
        db.session.commit()
        return 0
    if not stream.pending_after(state.cursor_seq):
        db.session.commit()
        return 0
    now = clock.now()
    due = state.next_attempt_at
    from app.tasks.models import UNFINISHED, Task

    waiting = db.session.scalar(
        db.select(Task.id).where(Task.kind == KIND, Task.status.in_(UNFINISHED)).limit(1)
    )
    if waiting is None:
        create_task(KIND, "sync", run_after=due if due and due > now else None)
    db.session.commit()
    return int(waiting is None)


def send_batch(*, force: bool = False, transport: httpx.BaseTransport | None = None) -> dict:
    """Send the next batch if one is due (any time with ``force``) and record the outcome.

    Returns ``{"outcome": "off" | "blocked" | "not due" | "nothing" | "sent" | "failed" |
    "unauthorized", "events": n, "status": http status | None, ...}``.

    No lock is held while sending: workers run one ``sync.batch`` at a time (concurrency
    1), and a ``flask sync now`` racing one may send a batch twice (receivers dedupe by
    event id) but never moves the cursor twice (compare-and-set in ``_record``).
    """
    if not configured():
        return {"outcome": "off", "events": 0}
    config = current_app.config
    state = load_state()
    now = clock.now()
    if not force:
        if state.auth_blocked and state.auth_blocked == fingerprint():
            db.session.commit()
            return {"outcome": "blocked", "events": 0}
        if state.next_attempt_at is not None and _aware(state.next_attempt_at) > now:
            db.session.commit()
            return {
                "outcome": "not due",
                "events": 0,
                "next_attempt_at": _iso(state.next_attempt_at),
            }
    from_seq = state.cursor_seq
    events = stream.events_after(from_seq, int(config["SYNC_BATCH_SIZE"]))
    if not events:
        db.session.commit()
        return {"outcome": "nothing", "events": 0}
    body = {"node_id": node_clock.node_id(), "events": [event.to_dict() for event in events]}
    last_seq, last_id = events[-1].seq, events[-1].id
    db.session.commit()  # no transaction stays open while we wait on the network
    status_code, problem = _post(body, float(config["SYNC_TIMEOUT_SECONDS"]), transport)
    return _record(from_seq, last_seq, last_id, len(events), status_code, problem)


def _aware(moment: datetime) -> datetime:
    from app.templating import as_utc

    return as_utc(moment)


def _post(body: dict, timeout: float, transport: Any) -> tuple[int | None, str | None]:
    config = current_app.config
    headers = {"User-Agent": "Casehook-Sync/1"}
    if config.get("SYNC_TOKEN"):
        headers["Authorization"] = f"Bearer {config['SYNC_TOKEN']}"
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(config["SYNC_URL"], json=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{exc.__class__.__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:300]}"


def _record(
    from_seq: int, last_seq: int, last_id: str, count: int, code: int | None, problem: str | None
) -> dict:
    """Write the outcome of one attempt; the cursor moves only if it is still ``from_seq``."""
    config = current_app.config
    state = load_state()
    now = clock.now()
    result: dict[str, Any] = {"events": count, "status": code}
    if problem is None:
        moved = db.session.execute(
            _state.update()
            .where(_state.c.id == 1, _state.c.cursor_seq == from_seq)
            .values(
                cursor_seq=last_seq,
                cursor_event_id=last_id,
                failures=0,
                last_success_at=now,
                next_attempt_at=now + timedelta(seconds=float(config["SYNC_INTERVAL_SECONDS"])),
                auth_blocked=None,
                sent=_state.c.sent + count,
            )
        ).rowcount
        result["outcome"] = "sent" if moved else "sent (another sender moved the cursor)"
        log.info("sync.sent", events=count, cursor=last_id, status=code)
    elif code == 401:
        state.auth_blocked = fingerprint()
        state.last_error = (
            "401 Unauthorized: the target refused CASEHOOK_SYNC_TOKEN; not retried until"
            " CASEHOOK_SYNC_URL or CASEHOOK_SYNC_TOKEN changes"
        )
        state.last_error_at, state.next_attempt_at = now, None
        result["outcome"] = "unauthorized"
        log.error("sync.auth_failed", url=config["SYNC_URL"], status=code)
    else:
        state.failures = (state.failures or 0) + 1
        delay = backoff_seconds(state.failures)
        state.last_error, state.last_error_at = problem, now
        state.next_attempt_at = now + timedelta(seconds=delay)
        result.update(outcome="failed", error=problem, retry_in=round(delay, 3))
        log.warning("sync.failed", error=problem, failures=state.failures, retry_in=delay)
    db.session.commit()
    return result


@task_kind(KIND, retry=(1.0,), timeout=120, concurrency=1)
def run_sync_batch(_task: Any) -> dict:
    """One batch, if due (the supervisor made this task; ``send_batch`` records the rest)."""
    return send_batch()
