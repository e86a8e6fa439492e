"""``/metrics`` and the logs (SPEC §5, observable): the text parses with prometheus-client's
own parser, counters move when deliveries arrive and are processed, every process of the
Procfile adds up (two gunicorn workers and an RQ worker), the token guards the route, and
credentials never reach a log line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.tasks import create_task, run_due, task_kind
from app.tasks.runner import TaskFailed
from tests.conftest import BOTH_DATABASES, GITHUB_FIXTURES, fixture_payload
from tests.faults_support import Process, wait_until
from tests.procfile import procfile_command, procfile_web

REPO = Path(__file__).resolve().parents[1]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` of a scrape, read by prometheus-client's parser
    (which raises on anything that is not the text format)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return scrape.get((name, frozenset(labels.items())), 0.0)


def total(scrape: dict, name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scrape.items() if n == name and wanted <= ls)


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.get_data(as_text=True))


ACCEPTED = {"provider": "github", "verdict": "accepted"}


@BOTH_DATABASES
def test_metrics_parse_and_move_with_deliveries(app, client, github, drain):
    before = scrape(client)
    assert value(before, "casehook_database_up") == 1

    assert github.send_fixture("issues.opened").status_code == 202
    delivery_id = str(uuid.uuid4())
    assert github.send_fixture("issues.edited", delivery_id).status_code == 202
    assert github.send_fixture("issues.edited", delivery_id).status_code == 200  # duplicate
    bad = github.send("issues", fixture_payload("issues.opened"), X_Hub_Signature_256="sha256=0")
    assert bad.status_code == 401
    assert client.post("/webhooks/nosuch/x", data=b"{}").status_code == 404

    waiting = scrape(client)
    verdicts = [
        ACCEPTED,
        {"provider": "github", "verdict": "duplicate"},
        {"provider": "github", "verdict": "unauthorized"},
        {"provider": "unknown", "verdict": "unknown_endpoint"},
    ]
    name = "casehook_deliveries_received_total"
    moved = [value(waiting, name, **ls) - value(before, name, **ls) for ls in verdicts]
    assert moved == [2, 1, 1, 1]
    ingest_count = value(waiting, "casehook_ingest_seconds_count", provider="github")
    assert ingest_count - value(before, "casehook_ingest_seconds_count", provider="github") == 4
    assert value(waiting, "casehook_inbox_deliveries") == 2
    assert value(waiting, "casehook_inbox_oldest_age_seconds") >= 0

    assert drain() == 0
    done = scrape(client)
    processed = value(done, "casehook_deliveries_processed_total", outcome="processed")
    assert (
        processed - value(before, "casehook_deliveries_processed_total", outcome="processed") == 2
    )
    count = "casehook_delivery_processing_seconds_count"
    assert value(done, count, provider="github") - value(before, count, provider="github") == 2
    assert value(done, "casehook_inbox_deliveries") == 0
    assert value(done, "casehook_inbox_oldest_age_seconds") == 0
    assert value(done, "casehook_cases", status="open") == 1


#: What the log context held while ``test.metrics_ok`` ran.
seen_log_context: list[dict] = []


@task_kind("test.metrics_ok")
def _ok(task):
    seen_log_context.append(structlog.contextvars.get_contextvars())
    return "fine"


@task_kind("test.metrics_broken")
def _broken(task):
    raise TaskFailed("no")


def test_task_attempts_and_task_states(app, client):
    with app.app_context():
        before = scrape(client)
        create_task("test.metrics_ok", "case:1")
        create_task("test.metrics_broken", "case:1")
        db.session.commit()
        queued = scrape(client)
        assert value(queued, "casehook_tasks", kind="test.metrics_ok", state="queued") == 1
        task_id = create_task("test.metrics_ok", "case:1").id  # the one above, deduplicated
        run_due()
    # Every line the handler logged named its task and case; nothing stays bound after.
    assert seen_log_context[-1] == {"task_id": task_id, "kind": "test.metrics_ok", "case_id": 1}
    assert structlog.contextvars.get_contextvars() == {}
    after = scrape(client)
    assert value(after, "casehook_tasks", kind="test.metrics_ok", state="queued") == 0
    for name, labels in [
        ("casehook_task_attempts_total", {"kind": "test.metrics_ok", "outcome": "succeeded"}),
        ("casehook_task_attempts_total", {"kind": "test.metrics_broken", "outcome": "failed"}),
        ("casehook_tasks_finished_total", {"kind": "test.metrics_ok", "state": "succeeded"}),
        ("casehook_tasks_finished_total", {"kind": "test.metrics_broken", "state": "failed"}),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == 1, (name, labels)


def test_outbound_and_sync_lag_functions(client):
    from app import metrics

    before = scrape(client)
    metrics.outbound_attempt(metrics.outbound_outcome(503))
    metrics.outbound_attempt(metrics.outbound_outcome(None, timed_out=True))
    metrics.set_sync_lag(12.5)
    after = scrape(client)
    for outcome in ("http_5xx", "timeout"):
        moved = value(after, "casehook_outbound_attempts_total", outcome=outcome) - value(
            before, "casehook_outbound_attempts_total", outcome=outcome
        )
        assert moved == 1
    assert value(after, "casehook_sync_lag_seconds") == 12.5


def test_metrics_token(app, anonymous_client):
    # Open without a token, and outside the console's sign-in and its headers.
    response = anonymous_client.get("/metrics")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers

    app.config["METRICS_TOKEN"] = "metrics-s3cret-token"
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "metrics-s3cret-token"},
    ):
        refused = anonymous_client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "casehook_" not in refused.get_data(as_text=True)
    scrape(anonymous_client, Authorization="Bearer metrics-s3cret-token")


def test_database_down_still_answers(app, client):
    with app.app_context():
        db.session.execute(db.text("DROP TABLE tasks"))
        db.session.commit()
    scraped = scrape(client)
    assert value(scraped, "casehook_database_up") == 0
    assert not total(scraped, "casehook_inbox_deliveries")


# --- logs ----------------------------------------------------------------------------------


def _log_lines(code: str) -> list[dict]:
    """The JSON lines a fresh process writes when it configures Casehook's logs and runs
    ``code`` (``log`` and ``logs`` are in scope)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from app import logs\nfrom app.logs import log\nlogs.configure()\n{code}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_log_lines_never_carry_credentials():
    lines = _log_lines(
        "with logs.bound(task_id='T1', correlation_id='C1'):\n"
        "    log.info('x', secret='s3cr3t-value', api_key='k3y-value', max_tokens=500,\n"
        "             headers={'Authorization': 'Bearer abcdefgh12345',\n"
        "                      'X-GitHub-Event': 'issues'},\n"
        "             error='refused: Authorization: Bearer zyxwvuts98765 at '\n"
        "                   'https://bob:hunter22@example.com/x')\n"
        "log.info('y')\n"
    )
    text = json.dumps(lines)
    for leaked in ("s3cr3t-value", "k3y-value", "abcdefgh12345", "zyxwvuts98765", "hunter22"):
        assert leaked not in text
    first, second = lines
    assert first["secret"] == first["api_key"] == "[redacted]"
    assert first["max_tokens"] == 500  # numbers say nothing secret
    assert first["headers"] == {"Authorization": "[redacted]", "X-GitHub-Event": "issues"}
    assert first["task_id"] == "T1" and first["correlation_id"] == "C1"
    assert "task_id" not in second  # bound only inside the block


# --- real processes --------------------------------------------------------------------------


def _per_process(directory: Path, name: str, **labels: str) -> dict[str, float]:
    """``{pid: value}`` of a counter, one process's file at a time."""
    found = {}
    for path in directory.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            scraped = samples(generate_latest(registry).decode())
        if amount := value(scraped, name, **labels):
            found[path.stem.rpartition("_")[2]] = amount
    return found


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_two_gunicorn_workers_and_a_worker_add_up(app, github, tmp_path):
    """The Procfile's web line with two workers, and its worker line: /metrics counts every
    delivery once whichever process took it, and files left by a previous run are gone."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # A counter file of a process that no longer runs (a previous start): not counted.
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    stale = MmapedDict(str(directory / f"counter_{_dead_pid()}.db"))
    stale.write_value(
        mmap_key(
            "casehook_deliveries_received",
            "casehook_deliveries_received_total",
            ["provider", "verdict"],
            ["github", "accepted"],
            "stale",
        ),
        1000.0,
        0.0,
    )
    stale.close()
    env = {
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "CASEHOOK_QUEUE": app.config["RQ_QUEUE"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CASEHOOK_METRICS_TOKEN": "scrape-token",
    }
    auth = {"Authorization": "Bearer scrape-token"}
    body = (GITHUB_FIXTURES / "issues.opened.json").read_bytes()
    sent = 0
    lock = threading.Lock()

    def post(url: str) -> None:
        nonlocal sent
        response = httpx.post(
            url + github.path, content=body, headers=github.headers("issues", body)
        )
        assert response.status_code == 202, response.text
        with lock:
            sent += 1

    with procfile_web(env, tmp_path / "web.log") as url:
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(8) as pool:  # fresh connections, in parallel: both workers
            while (
                len(_per_process(directory, "casehook_deliveries_received_total", **ACCEPTED)) < 2
            ):
                assert time.monotonic() < deadline, "one gunicorn worker served every delivery"
                list(pool.map(post, [url] * 8))
        served = _per_process(directory, "casehook_deliveries_received_total", **ACCEPTED)
        assert len(served) == 2 and sum(served.values()) == sent

        scraped = samples(httpx.get(url + "/metrics", headers=auth).text)
        assert value(scraped, "casehook_deliveries_received_total", **ACCEPTED) == sent
        assert value(scraped, "casehook_ingest_seconds_count", provider="github") == sent
        assert value(scraped, "casehook_inbox_deliveries") == sent
        assert httpx.get(url + "/metrics").status_code == 401

        worker_env = {**os.environ, **env}
        worker_env.pop("GUNICORN_CMD_ARGS", None)
        worker = Process("worker", procfile_command("worker"), worker_env, tmp_path / "w.log")
        worker.start()
        try:

            def all_processed() -> bool:
                now = samples(httpx.get(url + "/metrics", headers=auth).text)
                return (
                    value(now, "casehook_deliveries_processed_total", outcome="processed") == sent
                    and value(now, "casehook_inbox_deliveries") == 0
                )

            wait_until(all_processed, 60, "the worker's counts in /metrics")
        finally:
            worker.kill9()

    # One JSON line per delivery received (web) and processed (worker), naming it; a
    # processed one names its case, and its id is the correlation id of what it caused.
    received = _lines(tmp_path / "web.log", "delivery.received")
    processed = _lines(tmp_path / "w.log", "delivery.processed")
    assert len(received) == len(processed) == sent
    assert {line["delivery_pk"] for line in received} == {line["delivery_pk"] for line in processed}
    assert all(
        line["case_id"] and line["correlation_id"] == line["delivery_pk"] for line in processed
    )
    assert "scrape-token" not in (tmp_path / "web.log").read_text()


def _lines(path: Path, event: str) -> list[dict]:
    """The JSON log lines of ``event`` in a process's log."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"event": "{event}"' in line:
            found.append(json.loads(line))
    return found
