"""Tasks that write resolution outputs (kinds ``outputs.write`` and ``outputs.regenerate``):
thin wrappers around ``app.outputs.service``.

The task is created in the transaction that asks for it (resolving the case, "write them
again", "regenerate"), so an acknowledged request is never without its task; the writer
then works in a worker with no transaction open (``service._write``). Subjects are
``case:<id>`` (all three) and ``output:<id>`` (one regenerated): one unfinished task per
subject, so a second click while one waits returns the first. ``writing_state`` reads
where writing stands from the tasks table.
"""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.tasks import Task, create_task, latest_task, task_kind, task_state

WRITE = "outputs.write"
REGENERATE = "outputs.regenerate"


def write_subject(case_id: int) -> str:
    return f"case:{case_id}"


def regenerate_subject(output_id: int) -> str:
    return f"output:{output_id}"


def enqueue_write(case_id: int, actor: str | None = None) -> Task:
    """Add the task writing the three outputs of case ``case_id``; the caller commits."""
    return create_task(WRITE, write_subject(case_id), {"case_id": case_id, "actor": actor})


def enqueue_regenerate(output: Any, keep_edits: bool = False, actor: str | None = None) -> Task:
    """Add the task writing ``output`` again; the caller commits."""
    payload = {"output_id": output.id, "keep_edits": bool(keep_edits), "actor": actor}
    return create_task(REGENERATE, regenerate_subject(output.id), payload)


# Three documents, each one LLM call at most (LLM_TIMEOUT_SECONDS, default 30): room for all
# of them to time out.
@task_kind(WRITE, retry=(10, 60), timeout=600)
def write_outputs(task: Task) -> str:
    from app.outputs import service

    payload = task.payload
    written = service.write_outputs(payload["case_id"], actor=payload.get("actor"))
    return f"wrote {len(written)} outputs"


@task_kind(REGENERATE, retry=(10, 60), timeout=300)
def regenerate_output(task: Task) -> str:
    from app.outputs import service
    from app.outputs.models import ResolutionOutput

    payload = task.payload
    output = db.session.get(ResolutionOutput, payload["output_id"])
    if output is None:
        return "output gone"
    service.regenerate(output, keep_edits=payload.get("keep_edits", False),
                       actor=payload.get("actor"))  # fmt: skip
    return f"regenerated {output.kind}"


def writing_state(case_id: int, since: Any = None) -> dict:
    """Where writing stands for a case: ``{"state": "pending"|"failed"|"idle",
    "detail": str|None, "task": {"id", "status", "attempts", "last_error"}|None}``.

    ``pending``: a task is queued, running or waiting to retry (``task`` is it). ``failed``:
    the latest task failed after ``since`` (the newest output's time; None: any failure
    counts), ``detail`` its error's last line. ``task`` is otherwise the newest task.
    """
    from app.outputs.models import ResolutionOutput
    from app.templating import as_utc

    output_ids = db.session.scalars(
        db.select(ResolutionOutput.id).where(ResolutionOutput.case_id == case_id)
    ).all()
    tasks = [latest_task(WRITE, write_subject(case_id))]
    tasks += [latest_task(REGENERATE, regenerate_subject(i)) for i in output_ids]
    tasks = [t for t in tasks if t is not None]
    pending = [t for t in tasks if t.pending]
    if pending:
        return {"state": "pending", "detail": None, "task": task_state(pending[0])}
    failed = [
        t
        for t in tasks
        if t.status == "failed"
        and t.finished_at is not None
        and (since is None or as_utc(t.finished_at) > as_utc(since))
    ]
    if failed:
        latest = max(failed, key=lambda t: as_utc(t.finished_at))
        lines = [line for line in (latest.last_error or "").strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else "the task failed"
        return {"state": "failed", "detail": detail, "task": task_state(latest)}
    newest = max(tasks, key=lambda t: as_utc(t.created_at), default=None)
    return {"state": "idle", "detail": None, "task": task_state(newest)}
