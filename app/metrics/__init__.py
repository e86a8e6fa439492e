"""Prometheus metrics (SPEC §5, observable): what every process counts, added up at scrape.

Two kinds of numbers:

- **counted where it happens** (counters, histograms, the sync-lag gauge), by whichever
  process does the work: gunicorn workers (ingest), RQ workers (processing, tasks,
  outbound requests). prometheus-client's multiprocess mode keeps each process's values in
  files under one directory (``config.metrics_directory``: ``PROMETHEUS_MULTIPROC_DIR``,
  else ``instance/prometheus``) and ``GET /metrics`` sums them, so every process of the
  machine adds up. A process's counters outlive it (totals must not drop when gunicorn
  replaces a worker); its live gauges are dropped when it exits (gunicorn's ``child_exit``
  hook, ``gunicorn.conf.py``), and files of processes that are gone are removed when the
  web process starts (``remove_dead_files``).
- **read at scrape time** from the database (inbox depth and age, unfinished tasks, cases
  by status): ``app/metrics/collect.py``.

Other features count through the functions here (``outbound_attempt``, ``set_sync_lag``),
so that metric names, labels and units stay in one place.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from app import ROOT, config

#: The multiprocess directory. Chosen before prometheus-client builds any metric: it picks
#: the multiprocess value class from this environment variable.
DIRECTORY = config.metrics_directory(ROOT / "instance")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(DIRECTORY)
DIRECTORY.mkdir(parents=True, exist_ok=True)

from prometheus_client import Counter, Gauge, Histogram, values  # noqa: E402
from prometheus_client.multiprocess import mark_process_dead  # noqa: E402

# Someone may have imported prometheus-client before the variable was set (a test importing
# its parser first): make sure the metrics below are multiprocess ones all the same.
values.ValueClass = values.get_value_class()

#: Seconds: ingest answers in milliseconds; processing may take longer (case writes).
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

DELIVERIES_RECEIVED = Counter(
    "casehook_deliveries_received",
    "Requests to /webhooks/, by provider and verdict (accepted, duplicate, connection_test, "
    "unauthorized, rejected, unknown_endpoint, endpoint_disabled, secret_unavailable).",
    ["provider", "verdict"],
)
INGEST_SECONDS = Histogram(
    "casehook_ingest_seconds",
    "Time to verify, store and acknowledge one delivery (seconds), by provider.",
    ["provider"],
    buckets=FAST_BUCKETS,
)
DELIVERIES_PROCESSED = Counter(
    "casehook_deliveries_processed",
    "Deliveries taken out of the inbox, by outcome: processed, unprocessable (its payload or "
    "provider could not be read), retrying (processing raised; tried again later), failed "
    "(raised on its last try; waits for a replay).",
    ["outcome"],
)
PROCESSING_SECONDS = Histogram(
    "casehook_delivery_processing_seconds",
    "Time to process one delivery (match commands, write cases), in seconds, by provider.",
    ["provider"],
    buckets=SLOW_BUCKETS,
)
TASK_ATTEMPTS = Counter(
    "casehook_task_attempts",
    "Task attempts by kind and outcome (succeeded, failed, timed_out, cancelled, lost).",
    ["kind", "outcome"],
)
TASK_ATTEMPT_SECONDS = Histogram(
    "casehook_task_attempt_seconds",
    "Duration of one task attempt (seconds), by kind.",
    ["kind"],
    buckets=SLOW_BUCKETS,
)
TASKS_FINISHED = Counter(
    "casehook_tasks_finished",
    "Tasks that reached a final state, by kind and state (succeeded, failed, cancelled). "
    "Queued and running tasks are the casehook_tasks gauge.",
    ["kind", "state"],
)
OUTBOUND_ATTEMPTS = Counter(
    "casehook_outbound_attempts",
    "Requests Casehook sent to other systems, by outcome (ok, http_4xx, http_5xx, "
    "timeout, error); count them with outbound_attempt().",
    ["outcome"],
)
SYNC_LAG = Gauge(
    "casehook_sync_lag_seconds",
    "Age of the oldest case event not yet accepted by the sync target (seconds; 0 when "
    "caught up); set with set_sync_lag().",
    multiprocess_mode="mostrecent",
)


#: ``(provider, verdict)`` → the counter and histogram children ingest counts with: found
#: once, not through ``labels()`` (a lock and a tuple) on every request.
_received: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def delivery_received(provider: str, verdict: str, seconds: float) -> None:
    """Count one request to ``/webhooks/`` (``provider`` must be a known provider's name or
    ``unknown``: labels must stay few)."""
    children = _received.get((provider, verdict))
    if children is None:
        children = _received[(provider, verdict)] = (
            DELIVERIES_RECEIVED.labels(provider, verdict),
            INGEST_SECONDS.labels(provider),
        )
    children[0].inc()
    children[1].observe(seconds)


def delivery_processed(
    outcome: str, seconds: float | None = None, provider: str | None = None
) -> None:
    """Count one delivery taken out of the inbox (outcomes: see ``DELIVERIES_PROCESSED``);
    with ``seconds`` and its endpoint's ``provider``, time it too."""
    DELIVERIES_PROCESSED.labels(outcome).inc()
    if seconds is not None and provider is not None:
        PROCESSING_SECONDS.labels(provider).observe(seconds)


def task_attempt(kind: str, outcome: str, seconds: float | None = None) -> None:
    """Count one finished task attempt; ``seconds`` is how long it ran, when known."""
    TASK_ATTEMPTS.labels(kind, outcome).inc()
    if seconds is not None:
        TASK_ATTEMPT_SECONDS.labels(kind).observe(seconds)


def task_finished(kind: str, state: str) -> None:
    """Count a task that reached ``state`` (succeeded, failed, cancelled)."""
    TASKS_FINISHED.labels(kind, state).inc()


def outbound_attempt(outcome: str) -> None:
    """Count one outbound request. ``outcome``: ``ok`` (2xx), ``http_4xx``, ``http_5xx``,
    ``timeout`` or ``error`` (connection refused, TLS, ...); use ``outbound_outcome``."""
    OUTBOUND_ATTEMPTS.labels(outcome).inc()


def outbound_outcome(status_code: int | None, timed_out: bool = False) -> str:
    """The ``outbound_attempt`` outcome of a response status (None: no response)."""
    if timed_out:
        return "timeout"
    if status_code is None:
        return "error"
    if 200 <= status_code < 300:
        return "ok"
    return f"http_{status_code // 100}xx"


def set_sync_lag(seconds: float) -> None:
    """Set the sync lag: seconds between now and the oldest event the target has not
    accepted (0 when it has them all). The most recent value any process set wins."""
    SYNC_LAG.set(max(0.0, float(seconds)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_dead_files(directory: Path = DIRECTORY) -> int:
    """Remove the metric files of processes that no longer run (a previous start of
    Casehook: their counters restart from zero, which Prometheus reads as a restart);
    returns how many. Pids are this machine's: do not share the directory between
    machines or containers."""
    removed = 0
    for path in directory.glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def process_exited(pid: int) -> None:
    """A process is gone (gunicorn's ``child_exit``): drop its live gauges."""
    mark_process_dead(pid, str(DIRECTORY))
