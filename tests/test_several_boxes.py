"""Two boxes' worth of processes against one Postgres, one Redis and one object store
(issue 8, "Scale-out beyond one box"; README, "Several boxes").

Two ``web:`` lines of the real Procfile (each its own gunicorn, port, metrics folder and
attachments folder, as on two machines) and two ``worker:`` lines share one Postgres, one
Redis and one bucket of a ``moto_server``, and one ``SECRET_KEY``. Signed GitHub deliveries
about 20 issues go to the two web processes in turn. Then every acknowledged delivery must
be stored once and processed once (exactly one case event each), each issue must be one
case with all its events, a sign-in on one box must hold on the other, and a file attached
through one web process must come back intact through the other.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import create_engine, text
from werkzeug.security import generate_password_hash

from app import create_app
from app.accounts.models import User
from app.accounts.service import create_token
from app.config import normalise_database_url
from app.extensions import db
from tests.faults_support import (
    VENV_BIN,
    Process,
    Sender,
    format_tails,
    make_delivery,
    stop_all,
    wait_until,
    web_answers,
    worker_registered,
)
from tests.procfile import free_port, procfile_command
from tests.s3_support import make_bucket, moto_server, s3_env
from tests.test_faults import SECRET_KEY, db_state, find_problems, prepare_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ISSUES = 20
PER_ISSUE = 10  # issues.opened, then comments and edits: 200 deliveries in all
SENDERS = 4  # threads; each posts its issues' deliveries in order, one at a time
DEADLINE = 40  # seconds for the workers to process everything after the last ack
EMAIL, PASSWORD = "oncall@example.com", "several boxes password"


def box_env(tmp_path, name: str, shared: dict[str, str]) -> dict[str, str]:
    """The environment of one process: what the boxes share, plus what a machine keeps
    to itself (a metrics folder, an attachments folder that must stay unused)."""
    own = tmp_path / name
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "AWS_"))},
        **shared,
        "PROMETHEUS_MULTIPROC_DIR": str(own / "prometheus"),
        "CASEHOOK_ATTACHMENTS_DIR": str(own / "attachments"),
        "PORT": str(free_port()),
    }


def plan() -> list[list]:
    """Per sender, its deliveries in order: for each of its issues, issues.opened first,
    then comments and edits on it."""
    per_sender: list[list] = [[] for _ in range(SENDERS)]
    for n in range(ISSUES):
        number = 8000 + n
        deliveries = [make_delivery("issues.opened", number, "")]
        for i in range(1, PER_ISSUE):
            kind = "issues.edited" if i % 4 == 0 else "issue_comment.created"
            deliveries.append(make_delivery(kind, number, f"{n}-{i}"))
        per_sender[n % SENDERS].extend(deliveries)
    return per_sender


def send_alternating(urls: list[str], path: str, secret: str, deliveries: list) -> list:
    """Post ``deliveries`` one after another, each to the next web process in turn (so
    the deliveries of one issue are split over both); returns their results, up to the
    first one not acknowledged."""
    senders = [Sender(url, path, secret, [], 0, threading.Event(), give_up=10) for url in urls]
    results = []
    with httpx.Client(timeout=10) as client:
        for i, delivery in enumerate(deliveries):
            result = senders[i % len(senders)].post(client, delivery)
            result.web = i % len(senders)  # which web process acknowledged it
            results.append(result)
            if result.status is None:
                break  # the test fails on it; do not retry the rest for minutes
    return results


def sign_in(base_url: str) -> httpx.Client:
    """A client signed in through ``base_url``'s sign-in form (CSRF token and all)."""
    client = httpx.Client(base_url=base_url, timeout=10)
    page = client.get("/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert answer.status_code in (302, 303), answer.text[:500]
    return client


def make_engineer(database_url: str) -> str:
    """Create the engineer ``EMAIL`` (password ``PASSWORD``); returns an API token of theirs."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        user = User(email=EMAIL, role="engineer", password_hash=generate_password_hash(PASSWORD))
        db.session.add(user)
        db.session.commit()
        bearer = create_token(user, "several boxes")[1]
        db.session.remove()
        db.engine.dispose()
    return bearer


def test_two_web_and_two_worker_processes_share_one_database_redis_and_store(
    postgres_url, redis_url, tmp_path
):
    started = time.monotonic()
    endpoint_path, secret = prepare_database(postgres_url)

    with moto_server(tmp_path / "moto.log") as s3_endpoint:
        bucket = make_bucket(s3_endpoint)
        shared = {
            **s3_env(s3_endpoint),
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_url,
            "CASEHOOK_QUEUE": f"boxes-{uuid.uuid4().hex[:10]}",
            "CASEHOOK_ATTACHMENTS_URL": f"s3://{bucket}/attachments",
            "WEB_CONCURRENCY": "1",  # two boxes of one gunicorn worker each: a 2-core machine
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
        webs = [
            Process(f"web{n}", procfile_command("web"), box_env(tmp_path, f"box{n}", shared),
                    tmp_path / f"web{n}.log")
            for n in (1, 2)
        ]  # fmt: skip
        workers = [
            Process(f"worker{n}", procfile_command("worker"),
                    box_env(tmp_path, f"box{n}", shared), tmp_path / f"worker{n}.log")
            for n in (1, 2)
        ]  # fmt: skip
        processes = [*webs, *workers]
        urls = [f"http://127.0.0.1:{w.env['PORT']}" for w in webs]
        engine = create_engine(normalise_database_url(postgres_url))
        try:
            for process in processes:
                process.start()
            bearer = make_engineer(postgres_url)  # while they start
            for url in urls:
                wait_until(lambda url=url: web_answers(url), 60, url)
            for worker in workers:
                wait_until(lambda w=worker: worker_registered(redis_url, w.pid), 60, worker.name)
            up = time.monotonic()

            # --- Deliveries over both web processes ---
            plans, results = plan(), []
            threads = [
                threading.Thread(
                    target=lambda p=p: results.extend(
                        send_alternating(urls, endpoint_path, secret, p)
                    )
                )
                for p in plans
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            sent = time.monotonic()
            acked = {r.delivery_id for r in results if r.status in (200, 202)}
            assert all(r.status == 202 for r in results), [
                (r.status, r.errors) for r in results if r.status != 202
            ][:5]
            assert len(results) == ISSUES * PER_ISSUE
            assert Counter(r.web for r in results) == {0: len(results) // 2, 1: len(results) // 2}

            def all_processed() -> bool:
                rows, _ = db_state(engine, endpoint_path)
                return acked <= rows.keys() and all(
                    r.status == "processed" for rs in rows.values() for r in rs
                )

            wait_until(all_processed, DEADLINE, "every delivery processed", step=0.3)
            processed = time.monotonic()
            rows, events = db_state(engine, endpoint_path)
            problems = find_problems(rows, events, acked, results)
            assert not problems, "\n".join(problems)

            # Each issue is one case, with one event per delivery about it.
            with engine.connect() as connection:
                cases = connection.execute(
                    text(
                        "SELECT c.dedup_key, count(DISTINCT c.id) AS cases, count(e.id) AS events"
                        " FROM cases c LEFT JOIN case_events e"
                        " ON e.case_id = c.id AND e.causation_id IS NOT NULL"
                        " GROUP BY c.dedup_key"
                    )
                ).all()
                case_ids = dict(
                    connection.execute(
                        text("SELECT dedup_key, min(id) FROM cases GROUP BY 1")
                    ).all()
                )
            per_issue = {key: (n_cases, n_events) for key, n_cases, n_events in cases}
            expected = {f"Codertocat/Hello-World#{8000 + n}": (1, PER_ISSUE) for n in range(ISSUES)}
            assert per_issue == expected

            # --- A sign-in on one box holds on the other (one SECRET_KEY) ---
            person = sign_in(urls[0])
            other_box = person.get(urls[1] + "/cases")
            assert other_box.status_code == 200 and EMAIL in other_box.text

            # --- Attachments written through one web process, read through the other ---
            case_id = case_ids["Codertocat/Hello-World#8000"]
            api = {"Authorization": f"Bearer {bearer}"}
            root = httpx.get(f"{urls[0]}/api/cases/{case_id}/branches", headers=api).json()
            root_id = root["tree"]["id"]
            blobs = {0: os.urandom(200_000), 1: bytes(range(256)) * 100}
            attachment_urls = {}
            for writer, blob in blobs.items():
                answer = httpx.post(
                    f"{urls[writer]}/api/cases/{case_id}/branches/{root_id}/notes",
                    headers=api,
                    data={"text": f"through web{writer + 1}"},
                    files={"files": (f"dump{writer}.bin", blob, "application/octet-stream")},
                    timeout=20,
                )
                assert answer.status_code == 201, answer.text
                attachment_urls[writer] = answer.json()["note"]["attachments"][0]["url"]
            for writer, blob in blobs.items():
                reader = urls[1 - writer]
                download = httpx.get(f"{reader}{attachment_urls[writer]}", headers=api)
                assert download.status_code == 200, download.text[:300]
                assert download.content == blob
                assert download.headers["Content-Disposition"].startswith("attachment;")
                assert download.headers["X-Content-Type-Options"] == "nosniff"
                # The signed-in person reads it through the other box too; signed out, no.
                assert person.get(f"{reader}{attachment_urls[writer]}").content == blob
                assert httpx.get(f"{reader}{attachment_urls[writer]}").status_code == 401
            for n in (1, 2):  # nothing went to either machine's own folder
                assert not (tmp_path / f"box{n}" / "attachments").exists()
            person.close()

            unexpected = [p.name for p in processes if not p.alive]
            assert not unexpected, f"processes exited by themselves: {unexpected}"
            print(
                f"\n  up in {up - started:.1f}s; {len(results)} deliveries acknowledged over "
                f"two web processes in {sent - up:.1f}s, all processed by two workers "
                f"{processed - sent:.1f}s later; {len(per_issue)} cases; "
                f"whole test {time.monotonic() - started:.1f}s"
            )
        except BaseException:
            print(format_tails(processes, 40))
            raise
        finally:
            stop_all(processes)
            engine.dispose()
