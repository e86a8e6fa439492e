"""Durable tasks: claim, retry, fail, dedup, lost leases, concurrency, cancel, wake-ups."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import clock
from app.extensions import db
from app.tasks import (
    TaskFailed,
    cancel_task,
    create_task,
    latest_task,
    run_due,
    run_task,
    task_kind,
)
from app.tasks.models import Task, TaskAttempt
from app.tasks.queue import get_queue
from app.tasks.supervisor import Supervisor, recover_lost_tasks, wake_due_tasks
from app.templating import as_utc
from tests.conftest import BOTH_DATABASES

calls: list[str] = []


@task_kind("test.echo", retry=(5, 50))
def _echo(task):
    calls.append(task.subject)
    if task.payload.get("fail"):
        raise RuntimeError(task.payload["fail"])
    if task.payload.get("give_up"):
        raise TaskFailed("cannot ever work")
    return {"echo": task.payload.get("text")}


@task_kind("test.limited", retry=(), concurrency=1)
def _limited(task):
    calls.append(task.subject)


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()


def _held_by(task_id: str, owner: str, expires_in: float) -> None:
    """As if the worker ``owner`` had claimed the task, its lease ending in ``expires_in`` s."""
    db.session.execute(
        Task.__table__.update()
        .where(Task.id == task_id)
        .values(
            status="running",
            lease_owner=owner,
            attempts=Task.attempts + 1,
            lease_expires_at=clock.now() + timedelta(seconds=expires_in),
        )
    )


def _task(task_id: str) -> Task:
    db.session.expire_all()
    return db.session.get(Task, task_id)


@BOTH_DATABASES
def test_a_task_is_woken_after_commit_and_run_by_a_worker(app, drain):
    with app.app_context():
        task = create_task("test.echo", "case:1", {"text": "hi"})
        assert get_queue().count == 0  # nothing leaves before the commit
        db.session.commit()
        assert get_queue().count == 1
        task_id = task.id
    assert drain() == 0
    with app.app_context():
        task = _task(task_id)
        assert (task.status, task.result, task.attempts) == ("succeeded", {"echo": "hi"}, 1)
        assert task.active_key is None and task.finished_at is not None
        [attempt] = task.attempt_log
        assert attempt.outcome == "succeeded" and attempt.latency_ms is not None


def test_a_rolled_back_task_wakes_nobody(app):
    with app.app_context():
        create_task("test.echo", "case:1")
        db.session.rollback()
        db.session.commit()
        assert get_queue().count == 0
        assert db.session.scalar(db.select(db.func.count(Task.id))) == 0


@BOTH_DATABASES
def test_dedup_returns_the_unfinished_task(app):
    with app.app_context():
        first = create_task("test.echo", "case:7")
        db.session.commit()
        assert create_task("test.echo", "case:7").id == first.id
        assert create_task("test.echo", "case:7", dedup=False).id != first.id
        db.session.commit()
        assert run_due() == 2
        # Finished: the next request makes a new task.
        assert create_task("test.echo", "case:7").id != first.id


@BOTH_DATABASES
def test_a_failing_task_retries_on_its_schedule_then_fails(app):
    with app.app_context():
        task_id = create_task("test.echo", "case:2", {"fail": "boom"}).id
        db.session.commit()
        assert run_task(task_id) in ("retry in 4s", "retry in 5s", "retry in 6s")
        task = _task(task_id)
        assert task.status == "queued" and task.last_error == "RuntimeError: boom"
        assert as_utc(task.run_after) > clock.now() + timedelta(seconds=4)
        assert run_task(task_id) == "not claimed"  # not due yet
        with clock.frozen_at(clock.now() + timedelta(seconds=6)):
            assert run_task(task_id).startswith("retry in")
        with clock.frozen_at(clock.now() + timedelta(seconds=120)):  # 50 s ± 10% later
            assert run_task(task_id) == "failed"
        task = _task(task_id)
        assert (task.status, task.attempts, task.active_key) == ("failed", 3, None)
        outcomes = [a.outcome for a in task.attempt_log]
        assert outcomes == ["failed", "failed", "failed"]


def test_task_failed_means_no_retry(app):
    with app.app_context():
        task_id = create_task("test.echo", "x", {"give_up": True}).id
        db.session.commit()
        assert run_task(task_id) == "failed"
        assert _task(task_id).last_error == "cannot ever work"
        assert _task(task_id).attempts == 1


def test_an_unknown_kind_fails_with_a_reason(app):
    with app.app_context():
        task = Task(kind="test.nobody", subject="x", max_attempts=3)
        db.session.add(task)
        db.session.commit()
        assert run_task(task.id) == "failed"
        assert "no task kind 'test.nobody'" in _task(task.id).last_error


@BOTH_DATABASES
def test_a_task_whose_worker_died_goes_back_to_the_queue(app):
    with app.app_context():
        task_id = create_task("test.echo", "case:3").id
        db.session.commit()
        # A worker claims it, then dies (kill -9): nobody renews the lease.
        _held_by(task_id, "dead:1:x", expires_in=-1)
        db.session.add(TaskAttempt(task_id=task_id, number=1, worker="dead:1:x"))
        db.session.commit()
        assert recover_lost_tasks() == 1
        task = _task(task_id)
        assert task.status == "queued" and task.lease_owner is None
        assert [a.outcome for a in task.attempt_log] == ["lost"]
        assert run_due() == 1
        assert _task(task_id).status == "succeeded"


def test_a_live_lease_is_left_alone(app):
    with app.app_context():
        task_id = create_task("test.echo", "case:3").id
        _held_by(task_id, "alive:1:x", expires_in=30)
        db.session.commit()
        assert recover_lost_tasks() == 0


@BOTH_DATABASES
def test_concurrency_limit_holds_and_a_freed_slot_wakes_the_next(app, drain):
    with app.app_context():
        first = create_task("test.limited", "a").id
        second = create_task("test.limited", "b").id
        db.session.commit()
        # Someone else is running "a" (a live lease): "b" may not start.
        _held_by(first, "other:1:x", expires_in=30)
        db.session.commit()
        assert run_task(second) == "not claimed"
        assert _task(second).status == "queued"
        # "a" ends: its slot wakes "b".
        db.session.execute(
            Task.__table__.update()
            .where(Task.id == first)
            .values(status="queued", lease_owner=None)
        )
        db.session.commit()
        get_queue().empty()
        assert run_task(first) == "succeeded"
        assert get_queue().count == 1  # the wake-up for "b"
    assert drain() == 0
    with app.app_context():
        assert _task(second).status == "succeeded"
    assert calls == ["a", "b"]


def test_cancel_a_queued_task(app):
    with app.app_context():
        task = create_task("test.echo", "case:9")
        db.session.commit()
        cancel_task(task, "not needed")
        db.session.commit()
        assert run_task(task.id) == "not claimed"
        assert _task(task.id).status == "cancelled" and calls == []


def test_a_lost_wake_up_is_sent_again(app, drain):
    with app.app_context():
        task_id = create_task("test.echo", "case:4").id
        db.session.commit()
        get_queue().empty()  # Redis lost the wake-up
        assert wake_due_tasks() == 0  # too early to call it lost
        with clock.frozen_at(clock.now() + timedelta(seconds=31)):
            assert wake_due_tasks() == 1
    assert drain() == 0
    with app.app_context():
        assert _task(task_id).status == "succeeded"


def test_a_redis_restart_wakes_every_due_task_at_once(app, drain, monkeypatch):
    with app.app_context():
        task_id = create_task("test.echo", "case:5").id
        db.session.commit()
        get_queue().empty()
        supervisor = Supervisor()
        supervisor.redis_run_id = "a-redis-that-has-since-restarted"
        assert supervisor.tick()["woken_tasks"] == 1
    assert drain() == 0
    with app.app_context():
        assert latest_task("test.echo", "case:5").id == task_id
        assert _task(task_id).status == "succeeded"


def test_the_supervisor_lease_lets_one_process_act(app):
    from app.tasks import leases

    with app.app_context():
        assert leases.acquire("supervisor", 10, owner="one")
        assert not leases.acquire("supervisor", 10, owner="two")
        assert leases.acquire("supervisor", 10, owner="one")  # renewal
        with clock.frozen_at(clock.now() + timedelta(seconds=11)):
            assert leases.acquire("supervisor", 10, owner="two")  # one stopped renewing
        leases.release("supervisor", owner="two")
        assert leases.acquire("supervisor", 10, owner="one")


def test_a_new_case_gets_its_root_branch_when_it_opens(app, github, drain):
    from app.branches.models import Branch
    from app.cases.models import Case

    github.send_fixture("issues.opened")
    assert drain() == 0
    with app.app_context():
        case = db.session.scalars(db.select(Case)).one()
        root = db.session.scalars(db.select(Branch).where(Branch.case_id == case.id)).one()
        assert root.parent_id is None and case.active_branch_id == root.id


@task_kind("test.reporting", retry=(3600,))
def _reporting(task):
    from app.tasks import AttemptFailed, Recorded

    if task.payload.get("busy") and task.attempts == 1:
        raise AttemptFailed("HTTP 429", status_code=429, retry_after=2)
    if task.payload.get("gone"):
        raise AttemptFailed("HTTP 410", status_code=410, final=True)
    return Recorded({"ok": True}, status_code=200, detail="thanks")


def test_a_handler_can_set_the_next_retry_and_what_the_attempt_log_shows(app):
    with app.app_context():
        busy = create_task("test.reporting", "busy", {"busy": True})
        gone = create_task("test.reporting", "gone", {"gone": True})
        db.session.commit()
        assert run_task(busy.id).startswith("retry in 2s")  # not the kind's hour
        assert run_task(gone.id) == "failed"  # final: no retry left unused
        busy, gone = _task(busy.id), _task(gone.id)
        first = busy.attempt_log[0]
        assert (first.status_code, first.detail) == (429, "HTTP 429")
        wait = (as_utc(busy.run_after) - as_utc(first.finished_at)).total_seconds()
        assert 1.5 <= wait <= 2.5
        assert (gone.status, gone.attempt_log[0].status_code) == ("failed", 410)
        db.session.execute(db.update(Task).where(Task.id == busy.id).values(run_after=clock.now()))
        db.session.commit()
        assert run_task(busy.id) == "succeeded"
        busy = _task(busy.id)
        assert busy.result == {"ok": True}
        assert (busy.attempt_log[1].status_code, busy.attempt_log[1].detail) == (200, "thanks")


def test_the_supervisor_wakes_only_the_head_of_a_concurrency_line(app):
    with app.app_context():
        tasks = [create_task("test.limited", f"line:{n}", concurrency_key="line") for n in range(3)]
        loose = create_task("test.echo", "loose")
        db.session.commit()
        get_queue().empty()
        db.session.execute(db.update(Task).values(woken_at=None))
        db.session.commit()
        assert wake_due_tasks() == 2  # the head of the line, and the task with no line
        assert {job.args[0] for job in get_queue().jobs} == {tasks[0].id, loose.id}
        _held_by(tasks[0].id, "another-worker", 30)
        db.session.execute(db.update(Task).values(woken_at=None))
        db.session.commit()
        get_queue().empty()
        # The one running holds its line: its next is woken by it, not by the supervisor.
        assert wake_due_tasks() == 1
        assert [job.args[0] for job in get_queue().jobs] == [loose.id]
