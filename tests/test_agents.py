"""Agents: registered commands run on a case as real processes (C8)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from app import clock
from app.agents import service
from app.agents.models import AgentRun
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.tasks import run_due
from app.tasks.models import Task, TaskAttempt
from tests.agents_support import (
    ECHO,
    FLAKY,
    LOUD,
    SPAWNER,
    alive,
    run_state,
    write_agent,
)
from tests.conftest import BOTH_DATABASES, add_case
from tests.faults_support import wait_until


def _case(app) -> int:
    with app.app_context():
        case = add_case("Disk full on db-1", "open", clock.now())
        db.session.commit()
        return case.id


def _agent(app, **values) -> None:
    with app.app_context():
        service.create_agent(values)
        db.session.commit()


def _run(app, case_id: int, agent: str, prompt: str = "hello", **options) -> str:
    with app.app_context():
        run = service.request_run(
            db.session.get(Case, case_id),
            service.get_agent(agent),
            prompt,
            **options,
        )
        db.session.commit()
        return run.id


def _events(app, case_id: int, type_: str) -> list[dict]:
    with app.app_context():
        return [
            e.payload
            for e in db.session.scalars(
                db.select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.type == type_)
            )
        ]


@BOTH_DATABASES
def test_the_prompt_goes_on_stdin_and_the_output_lands_on_the_case(app, tmp_path, monkeypatch):
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("WORKER_ONLY_SECRET", "do-not-leak")
    monkeypatch.setenv("SUMMARISER_KEY", "k-123")
    argv = write_agent(tmp_path, "echo", ECHO)
    _agent(app, name="echo", argv=argv, env=["LANG"], secrets={"API_KEY": "SUMMARISER_KEY"})
    case_id = _case(app)
    run_id = _run(app, case_id, "echo", "Summarise case 1; rm -rf / `whoami` $(id)")
    with app.app_context():
        assert run_due() == 1
        state = run_state(run_id)
    assert state["status"] == "succeeded" and state["exit_code"] == 0
    assert "prompt: Summarise case 1; rm -rf / `whoami` $(id)" in state["stdout"]
    assert f"case: {case_id} task: {state['task_id']}" in state["stdout"]
    # Only the allow-list, the secret and PATH reach the agent.
    assert "env: ['API_KEY', 'LANG', 'PATH']" in state["stdout"]
    assert "secret: k-123" in state["stdout"]
    assert "cwd-empty: True" in state["stdout"]
    assert state["stderr"].strip() == "to stderr"
    assert state["attempts"] == 1 and state["finished_at"]
    (finished,) = _events(app, case_id, "agent.run_finished")
    assert finished["status"] == "succeeded" and finished["exit_code"] == 0
    assert "prompt: Summarise" in finished["output"]


def test_output_is_capped_at_max_output_bytes(app, tmp_path):
    _agent(app, name="loud", argv=write_agent(tmp_path, "loud", LOUD), max_output_bytes=1000)
    run_id = _run(app, _case(app), "loud")
    with app.app_context():
        run_due()
        state = run_state(run_id)
    assert state["status"] == "succeeded"
    assert state["stdout"] == "x" * 1000 and state["stderr"] == "e" * 1000
    assert state["truncated"] is True


def test_a_missing_command_fails_at_once_with_the_reason(app):
    _agent(app, name="ghost", argv=["/nonexistent/agent"], retries=3)
    run_id = _run(app, _case(app), "ghost")
    with app.app_context():
        run_due()
        state = run_state(run_id)
    assert state["status"] == "failed" and state["attempts"] == 1
    assert "cannot start '/nonexistent/agent'" in state["last_error"]


def test_a_timeout_kills_the_whole_process_group(app, tmp_path):
    app.config["AGENT_KILL_GRACE_SECONDS"] = 0.5
    pid_file = tmp_path / "grandchild.pid"
    argv = [*write_agent(tmp_path, "spawner", SPAWNER), str(pid_file), "60"]
    _agent(app, name="slow", argv=argv, timeout_seconds=1, retries=2)
    case_id = _case(app)
    run_id = _run(app, case_id, "slow")
    started = time.monotonic()
    with app.app_context():
        run_due()
        state = run_state(run_id)
    assert time.monotonic() - started < 10
    assert state["status"] == "timed_out", state
    assert state["attempts"] == 1  # a timeout is not retried
    assert "timed out after 1 s" in state["last_error"]
    assert "started" in state["stdout"]
    grandchild = int(pid_file.read_text())
    # It ignored SIGTERM: only the SIGKILL of its group after the grace ends it.
    wait_until(lambda: not alive(grandchild), 5, "the grandchild to be gone")
    (finished,) = _events(app, case_id, "agent.run_finished")
    assert finished["status"] == "timed_out"


def test_cancel_from_the_api_kills_the_running_group(app, tmp_path, api_token):
    app.config["AGENT_KILL_GRACE_SECONDS"] = 0.5
    pid_file = tmp_path / "grandchild.pid"
    argv = [*write_agent(tmp_path, "spawner", SPAWNER), str(pid_file), "60"]
    _agent(app, name="long", argv=argv, timeout_seconds=120)
    run_id = _run(app, _case(app), "long")
    results = []

    def work():
        with app.app_context():
            results.append(run_due())

    worker = threading.Thread(target=work)
    worker.start()
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 20, "the agent to start")
    grandchild = int(pid_file.read_text())
    token = api_token("engineer")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/agent-runs/{run_id}", headers=headers).json["status"] == "running"
    response = client.post(f"/api/agent-runs/{run_id}/cancel", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "cancelled"
    worker.join(20)
    assert not worker.is_alive()
    wait_until(lambda: not alive(grandchild), 5, "the grandchild to be gone")
    with app.app_context():
        state = run_state(run_id)
    assert state["status"] == "cancelled"
    again = client.post(f"/api/agent-runs/{run_id}/cancel", headers=headers)
    assert again.status_code == 409
    with app.app_context():
        outcomes = db.session.scalars(
            db.select(TaskAttempt.outcome).where(TaskAttempt.task_id == state["task_id"])
        ).all()
    assert outcomes == ["cancelled"]


def test_a_failed_run_is_retried_then_succeeds(app, tmp_path):
    counter = tmp_path / "count"
    argv = [*write_agent(tmp_path, "flaky", FLAKY), str(counter), "2"]
    _agent(app, name="flaky", argv=argv, retries=2)
    case_id = _case(app)
    run_id = _run(app, case_id, "flaky")
    with app.app_context():
        run_due()
        state = run_state(run_id)
        assert state["status"] == "queued" and state["exit_code"] == 3
        assert "exited with code 3" in state["last_error"]
        assert _events(app, case_id, "agent.run_finished") == []  # not final yet
        task = db.session.get(Task, state["task_id"])
        task.run_after = clock.now() - timedelta(seconds=1)  # the backoff, skipped
        db.session.commit()
        run_due()
        state = run_state(run_id)
    assert state["status"] == "succeeded" and state["attempts"] == 2
    assert "attempt 2" in state["stdout"]


def test_a_run_without_retries_fails_with_its_exit_code(app, tmp_path):
    argv = [*write_agent(tmp_path, "flaky", FLAKY), str(tmp_path / "count"), "5"]
    _agent(app, name="flaky", argv=argv, retries=0)
    case_id = _case(app)
    run_id = _run(app, case_id, "flaky")
    with app.app_context():
        run_due()
        state = run_state(run_id)
    assert state["status"] == "failed" and state["exit_code"] == 3
    (finished,) = _events(app, case_id, "agent.run_finished")
    assert finished["status"] == "failed" and finished["exit_code"] == 3


def test_a_run_awaiting_approval_runs_only_once_approved(app, tmp_path, api_token):
    _agent(app, name="echo", argv=write_agent(tmp_path, "echo", ECHO))
    case_id = _case(app)
    run_id = _run(app, case_id, "echo", "hi", requires_approval=True)
    with app.app_context():
        assert run_due() == 0
        assert run_state(run_id)["status"] == "awaiting_approval"
    client = app.test_client()
    viewer = {"Authorization": f"Bearer {api_token('viewer')}"}
    assert client.post(f"/api/agent-runs/{run_id}/approve", headers=viewer).status_code == 403
    engineer = {"Authorization": f"Bearer {api_token('engineer')}"}
    response = client.post(f"/api/agent-runs/{run_id}/approve", headers=engineer)
    assert response.status_code == 200 and response.json["status"] == "queued"
    with app.app_context():
        assert run_due() == 1
        assert run_state(run_id)["status"] == "succeeded"
    assert client.post(f"/api/agent-runs/{run_id}/approve", headers=engineer).status_code == 409


def test_rejecting_a_run_that_awaits_approval_cancels_it(app, tmp_path, api_token):
    _agent(app, name="echo", argv=write_agent(tmp_path, "echo", ECHO))
    run_id = _run(app, _case(app), "echo", requires_approval=True)
    engineer = {"Authorization": f"Bearer {api_token('engineer')}"}
    response = app.test_client().post(f"/api/agent-runs/{run_id}/cancel", headers=engineer)
    assert response.json["status"] == "cancelled" and response.json["approval"] == "rejected"
    with app.app_context():
        assert db.session.scalar(db.select(AgentRun.task_id).where(AgentRun.id == run_id)) is None


def test_an_error_while_watching_still_kills_the_group(tmp_path):
    """The worker's own job timeout, or the database going away mid-run, raises inside the
    watch loop: the agent's group must not be left running unwatched."""
    from app.agents.execute import _execute

    pid_file = tmp_path / "grandchild.pid"
    argv = [*write_agent(tmp_path, "spawner", SPAWNER), str(pid_file), "60"]

    def probe() -> bool:
        if pid_file.exists() and pid_file.read_text():
            raise RuntimeError("the database went away")
        return False

    with pytest.raises(RuntimeError, match="went away"):
        _execute(argv, b"", {"PATH": "/usr/bin:/bin"}, str(tmp_path), limit=100, timeout=60,
                 grace=5, stream_every=1, on_start=lambda pgid: None,
                 on_output=lambda out, err: None, is_cancelled=probe)  # fmt: skip
    wait_until(lambda: not alive(int(pid_file.read_text())), 5, "the grandchild to be gone")
