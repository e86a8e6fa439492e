"""Agents across real worker processes (the Procfile's ``worker:`` line, on Postgres):
per-agent concurrency holds across processes, and a worker killed with ``kill -9`` in the
middle of a run leaves neither a ``running`` run nor its agent's processes behind."""

from __future__ import annotations

import os
import uuid

import pytest

from app import clock
from app.agents import service
from app.extensions import db
from app.tasks.models import TaskAttempt
from tests.agents_support import CRASHY, RECORDER, alive, max_overlap, run_state, write_agent
from tests.conftest import add_case
from tests.faults_support import (
    VENV_BIN,
    Process,
    stop_all,
    wait_until,
    worker_registered,
)
from tests.procfile import procfile_command

pytestmark = pytest.mark.slow
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _workers(app, tmp_path, count: int) -> list[Process]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TEST_")},
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "CASEHOOK_QUEUE": app.config["RQ_QUEUE"],
        "CASEHOOK_TASK_LEASE_SECONDS": "3",
        "CASEHOOK_SUPERVISOR_INTERVAL_SECONDS": "0.5",
        "CASEHOOK_AGENT_KILL_GRACE_SECONDS": "1",
    }
    command = procfile_command("worker")
    return [
        Process(f"worker{n}", command, env, tmp_path / f"worker{n}-{uuid.uuid4().hex[:6]}.log")
        for n in range(count)
    ]


def _start(app, worker: Process) -> None:
    worker.start()
    wait_until(lambda: worker_registered(app.config["REDIS_URL"], worker.pid), 30, worker.name)


def _setup(app, **agent) -> int:
    with app.app_context():
        service.create_agent(agent)
        case = add_case("Agents across workers", "open", clock.now())
        db.session.commit()
        return case.id


def _request(app, case_id: int, agent: str, count: int) -> list[str]:
    from app.cases.models import Case

    with app.app_context():
        case, found = db.session.get(Case, case_id), service.get_agent(agent)
        runs = [service.request_run(case, found, f"run {n}") for n in range(count)]
        db.session.commit()
        return [run.id for run in runs]


@ON_POSTGRES
def test_the_per_agent_limit_holds_across_worker_processes(app, tmp_path):
    log = tmp_path / "overlap.log"
    argv = [*write_agent(tmp_path, "recorder", RECORDER), str(log), "1.5"]
    case_id = _setup(app, name="recorder", argv=argv, max_concurrent=2)
    workers = _workers(app, tmp_path, 3)  # three could run three at once; the limit is two
    try:
        for worker in workers:
            _start(app, worker)
        run_ids = _request(app, case_id, "recorder", 6)
        with app.app_context():
            wait_until(
                lambda: all(run_state(r)["status"] == "succeeded" for r in run_ids),
                90,
                "six runs to succeed",
                step=0.5,
            )
    except BaseException:
        for worker in workers:
            print(worker.tail())
        raise
    finally:
        stop_all(workers)
    lines = log.read_text().splitlines()
    assert len(lines) == 12
    assert max_overlap(lines) == 2  # never more than the limit, and the limit was used
    pids = {line.split()[2] for line in lines}
    assert len(pids) == 6


@ON_POSTGRES
def test_a_worker_killed_mid_run_is_taken_over_and_its_agent_killed(app, tmp_path):
    counter, pid_file = tmp_path / "count", tmp_path / "grandchild.pid"
    argv = [*write_agent(tmp_path, "crashy", CRASHY), str(counter), str(pid_file)]
    case_id = _setup(app, name="crashy", argv=argv, retries=1, timeout_seconds=120)
    first, second = _workers(app, tmp_path, 2)
    try:
        _start(app, first)
        (run_id,) = _request(app, case_id, "crashy", 1)
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the agent to start")
        grandchild = int(pid_file.read_text())
        with app.app_context():
            assert run_state(run_id)["status"] == "running"
        first.kill9()
        assert alive(grandchild)  # its own session: the worker's death did not reach it
        _start(app, second)
        with app.app_context():
            wait_until(lambda: run_state(run_id)["status"] == "succeeded", 60, "the retry")
            state = run_state(run_id)
            outcomes = list(
                db.session.scalars(
                    db.select(TaskAttempt.outcome)
                    .where(TaskAttempt.task_id == state["task_id"])
                    .order_by(TaskAttempt.number)
                )
            )
    except BaseException:
        print(first.tail(), second.tail())
        raise
    finally:
        stop_all([first, second])
    assert outcomes == ["lost", "succeeded"]
    assert state["attempts"] == 2 and "attempt 2" in state["stdout"]
    # The second attempt killed what the first left in its process group.
    assert not alive(grandchild)


def test_the_readme_example_agent_reads_its_case_through_the_api(app, tmp_path):
    """``examples/agents/summarise-case.sh`` against the Procfile's web process, with the
    token scoped to its case."""
    from tests.procfile import ROOT, procfile_web

    script = str(ROOT / "examples" / "agents" / "summarise-case.sh")
    case_id = _setup(app, name="summarise", argv=[script], timeout_seconds=30)
    env = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": app.config["REDIS_URL"], "WEB_CONCURRENCY": "1"}  # fmt: skip
    with procfile_web(env, tmp_path / "web.log") as base_url:
        app.config["AGENT_API_URL"] = base_url
        (run_id,) = _request(app, case_id, "summarise", 1)
        with app.app_context():
            from app.tasks import run_due

            run_due()
            state = run_state(run_id)
    assert state["status"] == "succeeded", state
    assert f"Summary of case #{case_id}" in state["stdout"]
    assert "Title: Agents across workers" in state["stdout"]
    assert "last: agent.run_requested" in state["stdout"]
