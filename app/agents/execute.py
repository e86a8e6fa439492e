"""Running an agent: the task kind ``agents.run``.

One attempt starts the agent's ``argv`` (no shell) in a session of its own (its process
group id is its pid), writes the prompt to its stdin, keeps the first ``max_output_bytes``
of stdout and stderr, and waits. Three things end it early, each by stopping the **whole
process group** (SIGTERM, then SIGKILL after ``AGENT_KILL_GRACE_SECONDS``): the agent's
timeout (the run ends ``timed_out``, not retried), a cancel from the console or API (the
task loses its lease; seen through the runner's heartbeat and a status poll), and the worker
itself dying: the leader gets SIGKILL from the kernel (``PR_SET_PDEATHSIG``) and whatever it
spawned is killed by the next attempt, which finds the group recorded on the run.

No database transaction is open while the agent runs; output so far is written to the run
every ``AGENT_STREAM_SECONDS`` so the case page can show it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flask import current_app

from app.agents.models import Agent, AgentRun
from app.agents.service import MAX_TIMEOUT_SECONDS, RUN_KIND, get_agent
from app.events.record import record_event
from app.extensions import db
from app.logs import log
from app.tasks import Task, TaskCancelled, TaskFailed, task_kind
from app.tasks import runner as task_runner
from app.tasks.models import CANCELLED, RUNNING

_runs = AgentRun.__table__
_tasks = Task.__table__


class AgentExitedNonZero(RuntimeError):
    """The agent exited with a code other than 0 (the attempt failed; retried if allowed)."""


class _Capture(threading.Thread):
    """Reads one pipe to its end, keeping the first ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self.pipe, self.limit = pipe, limit
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.pipe.read1(65536):
                self.total += len(chunk)
                room = self.limit - len(self.kept)
                if room > 0:
                    self.kept += chunk[:room]

    def text(self) -> str:
        # NUL cannot be stored in a Postgres text column.
        return bytes(self.kept).decode("utf-8", "replace").replace("\x00", "\ufffd")

    @property
    def truncated(self) -> bool:
        return self.total > len(self.kept)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write the prompt and close stdin; an agent that never reads it is no error."""
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        pipe.close()


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL me if the worker dies (Linux only)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    if Path("/proc/self/stat").exists():
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(pgid: int, grace: float, leader: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()  # reap the leader, or it stays a zombie member of its group
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if leader is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(5)


def _marked(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\x00")
    except OSError:
        return False


def kill_leftovers(run: AgentRun, task_id: str) -> bool:
    """Kill what a dead worker's attempt left running (same host only; the group's
    processes must carry this task's ``CASEHOOK_TASK_ID``, so a reused id is left alone).
    Returns True when something was killed."""
    pgid = run.process_group
    if not pgid or run.process_host != socket.gethostname()[:100]:
        return False
    marker = f"CASEHOOK_TASK_ID={task_id}".encode()
    members = group_members(pgid)
    if not any(_marked(pid, marker) for pid in members):
        return False
    log.warning("agents.leftover_killed", run_id=run.id, process_group=pgid, pids=members)
    kill_group(pgid, 0.5)
    return True


def _environment(agent: Agent, run: AgentRun, task: Task) -> dict[str, str]:
    """Only what the agent is allowed: PATH, the allow-listed variables, its secrets, and
    Casehook's own (case id, task id, and the API with a token scoped to the case)."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
    for name in agent.env or []:
        if name in os.environ:
            env[name] = os.environ[name]
    for name, source in (agent.secrets or {}).items():
        if source not in os.environ:
            raise TaskFailed(f"secret {name}: the worker has no environment variable {source}")
        env[name] = os.environ[source]
    env.update(
        CASEHOOK_CASE_ID=str(run.case_id),
        CASEHOOK_TASK_ID=task.id,
        CASEHOOK_RUN_ID=run.id,
        CASEHOOK_AGENT=agent.name,
    )
    api_url = current_app.config.get("AGENT_API_URL")
    if api_url:
        from app.accounts.service import create_case_token

        env["CASEHOOK_API_URL"] = api_url.rstrip("/")
        env["CASEHOOK_API_TOKEN"] = create_case_token(
            run.case_id,
            ttl_seconds=agent.timeout_seconds + 60,
            name=f"agent run {run.id}",
        )
    return env


@task_kind(RUN_KIND, retry=(10, 60, 300, 900), timeout=MAX_TIMEOUT_SECONDS + 120)
def run_agent(task: Task) -> dict:
    """Run the agent of the run in ``task.payload["run_id"]`` once (one attempt)."""
    run = db.session.get(AgentRun, task.payload.get("run_id"))
    if run is None:
        raise TaskFailed("the run is gone")
    agent = get_agent(run.agent_name)
    if agent is None:
        raise TaskFailed(f"the agent {run.agent_name} no longer exists")
    kill_leftovers(run, task.id)
    env = _environment(agent, run, task)  # may commit a token (its own transaction)
    argv, prompt = list(agent.argv), run.prompt.encode()
    limit, timeout = agent.max_output_bytes, agent.timeout_seconds
    workdir, run_id, task_id = agent.workdir, run.id, task.id
    db.session.commit()  # nothing held while the agent runs
    config = current_app.config
    with contextlib.ExitStack() as stack:
        if not workdir:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="casehook-agent-"))
        outcome = _execute(
            argv,
            prompt,
            env,
            workdir,
            limit=limit,
            timeout=timeout,
            grace=float(config["AGENT_KILL_GRACE_SECONDS"]),
            stream_every=float(config["AGENT_STREAM_SECONDS"]),
            on_start=lambda pgid: _set_run(run_id, process_group=pgid,
                                           process_host=socket.gethostname()[:100]),
            on_output=lambda out, err: _set_run(run_id, stdout=out, stderr=err),
            is_cancelled=_cancel_probe(task_id),
        )  # fmt: skip
    return _record(task, run_id, outcome, timeout)


def _set_run(run_id: str, **values: Any) -> None:
    with db.engine.begin() as connection:
        connection.execute(_runs.update().where(_runs.c.id == run_id).values(**values))


def _cancel_probe(task_id: str) -> Callable[[], bool]:
    """True once the task is cancelled: the heartbeat noticed it lost its lease, or (sooner)
    a read of its status, at most once per ``AGENT_CANCEL_POLL_SECONDS``."""
    every = float(current_app.config["AGENT_CANCEL_POLL_SECONDS"])
    last = [0.0]

    def probe() -> bool:
        if task_runner.cancelled():
            return True
        if time.monotonic() - last[0] < every:
            return False
        last[0] = time.monotonic()
        with db.engine.connect() as connection:
            status = connection.execute(
                db.select(_tasks.c.status).where(_tasks.c.id == task_id)
            ).scalar()
        return status != RUNNING

    return probe


def _execute(
    argv: list[str],
    prompt: bytes,
    env: dict[str, str],
    workdir: str,
    *,
    limit: int,
    timeout: float,
    grace: float,
    stream_every: float,
    on_start: Callable[[int], None],
    on_output: Callable[[str, str], None],
    is_cancelled: Callable[[], bool],
) -> dict[str, Any]:
    """Start, feed, watch and (if need be) kill the agent; ``{"ended": "exited" |
    "timed_out" | "cancelled", "exit_code", "stdout", "stderr", "truncated",
    "duration_ms"}``."""
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only a prctl: safe in the child
            close_fds=True,
        )
    except OSError as exc:
        raise TaskFailed(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    pgid = process.pid  # a new session: the group id is the leader's pid
    out, err = _Capture(process.stdout, limit), _Capture(process.stderr, limit)
    out.start(), err.start()
    threading.Thread(target=_feed, args=(process.stdin, prompt), daemon=True).start()
    ended, last_stream, streamed = "exited", time.monotonic(), 0
    try:
        on_start(pgid)
        while process.poll() is None:
            now = time.monotonic()
            if now - started >= timeout:
                ended = "timed_out"
            elif is_cancelled():
                ended = "cancelled"
            if ended != "exited":
                kill_group(pgid, grace, process)
                break
            if now - last_stream >= stream_every and out.total + err.total != streamed:
                streamed, last_stream = out.total + err.total, now
                with contextlib.suppress(Exception):
                    on_output(out.text(), err.text())
            time.sleep(0.05)
    except BaseException:
        # Anything that stops the watching (the database away, the worker's own job
        # timeout, a shutdown) must not leave the agent running unwatched.
        kill_group(pgid, 0, process)
        raise
    if ended == "exited" and _group_alive(pgid):
        # The leader is done; what it left in its group (background children) goes too.
        kill_group(pgid, grace)
    out.join(5), err.join(5)
    return {
        "ended": ended,
        "exit_code": process.wait(),
        "stdout": out.text(),
        "stderr": err.text(),
        "truncated": out.truncated or err.truncated,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }


def _record(task: Task, run_id: str, outcome: dict[str, Any], timeout: float) -> dict:
    """Store the attempt's output on the run; on a final outcome, put it on the case
    timeline (and ask for a reply to the source when the run says so)."""
    run = db.session.get(AgentRun, run_id)
    ended = outcome["ended"]
    run.exit_code, run.stdout, run.stderr = (
        outcome["exit_code"],
        outcome["stdout"],
        outcome["stderr"],
    )
    run.truncated, run.duration_ms = outcome["truncated"], outcome["duration_ms"]
    run.process_group = run.process_host = None
    summary = {"exit_code": run.exit_code, "duration_ms": run.duration_ms}
    if ended == "cancelled":
        run.outcome = CANCELLED
        db.session.commit()
        raise TaskCancelled("the run was cancelled")
    if ended == "timed_out":
        run.outcome = "timed_out"
        _finished(run, "timed_out")
        db.session.commit()
        raise TaskFailed(f"timed out after {timeout:g} s; its process group was killed")
    if run.exit_code != 0:
        final = task.attempts >= task.max_attempts
        run.outcome = "failed"
        if final:
            _finished(run, "failed")
        db.session.commit()
        raise AgentExitedNonZero(f"the agent exited with code {run.exit_code}")
    run.outcome = "succeeded"
    _finished(run, "succeeded")
    _reply(run)
    return summary


def _finished(run: AgentRun, status: str) -> None:
    from app.cases.models import Case

    case = db.session.get(Case, run.case_id)
    if case is None:
        return
    seconds = (run.duration_ms or 0) / 1000
    record_event(
        case,
        "agent.run_finished",
        payload={
            "run_id": run.id,
            "agent": run.agent_name,
            "status": status,
            "exit_code": run.exit_code,
            "duration_ms": run.duration_ms,
            "summary": f"Agent {run.agent_name} {status.replace('_', ' ')} "
            f"(exit code {run.exit_code}, {seconds:.1f} s)",
            "output": run.stdout[:4000],
        },
    )


def _reply(run: AgentRun) -> None:
    """Post the output to the case's source when the run asks for it (app/replies); a case
    that cannot be replied to (no source, no reply token) is logged, not an error."""
    if not run.reply or not run.stdout.strip():
        return
    from app.cases.models import Case
    from app.replies.routes import ReplyRefused, check_reply
    from app.replies.tasks import request_reply

    case = db.session.get(Case, run.case_id)
    try:
        endpoint, text = check_reply(case, run.stdout)
    except ReplyRefused as exc:
        log.info("agents.reply_skipped", run_id=run.id, reason=exc.detail)
        return
    request_reply(endpoint, case.source, text, case=case, actor=f"agent {run.agent_name}",
                  origin="agent")  # fmt: skip
