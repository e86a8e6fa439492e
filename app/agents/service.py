"""Agent rules: validating definitions, requesting, approving and cancelling runs.

Plain functions over the session; callers commit. A run that may start at once gets its
task (kind ``agents.run``) in the same transaction; one that waits for approval gets it
when approved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app import clock
from app.agents.models import Agent, AgentRun
from app.errors import DomainError
from app.events.record import record_event
from app.extensions import db
from app.tasks import NotCancellable, cancel_task, create_task

RUN_KIND = "agents.run"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Upper bounds of an agent's limits (an attempt longer than a day is a mistake).
MAX_TIMEOUT_SECONDS = 86_400
MAX_OUTPUT_BYTES = 10 * 1024 * 1024
MAX_CONCURRENT = 100
MAX_RETRIES = 10
MAX_PROMPT_CHARS = 200_000
FIELDS = (
    "name",
    "description",
    "argv",
    "workdir",
    "env",
    "secrets",
    "max_concurrent",
    "timeout_seconds",
    "max_output_bytes",
    "retries",
)


class AgentError(DomainError, ValueError):
    """An agent definition or a run request is invalid; ``field`` names the part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class RunConflict(DomainError, ValueError):
    """The run is not in a state that allows this (approve a queued run, cancel a finished
    one)."""

    status, error = 409, "run_conflict"


def get_agent(name: str) -> Agent | None:
    return db.session.scalar(db.select(Agent).where(Agent.name == name))


def agent_or_404(name: str) -> Agent:
    """The agent named ``name``; a 404 saying so otherwise (for the console and the API)."""
    return db.first_or_404(
        db.select(Agent).where(Agent.name == name), description=f"there is no agent {name!r}"
    )


def all_agents() -> list[Agent]:
    return list(db.session.scalars(db.select(Agent).order_by(Agent.name)))


def clean_definition(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate an agent definition (form, API, CLI or config file) into column values.

    ``data``: ``{"name", "argv": [str, ...], "description"?, "workdir"?, "env"?: [str],
    "secrets"?: {str: str}, "max_concurrent"?, "timeout_seconds"?, "max_output_bytes"?,
    "retries"?}``. ``partial`` (PATCH) checks only the fields given. Raises ``AgentError``
    naming the first bad field (unknown fields too).
    """
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise AgentError(unknown[0], f"unknown field; known: {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise AgentError("name", "1-100 letters, digits, '.', '_' or '-', e.g. 'summarise'")
        out["name"] = name
    if "argv" in data or not partial:
        argv = data.get("argv")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and a and "\x00" not in a for a in argv)
        ):
            raise AgentError(
                "argv", 'a non-empty list of strings, e.g. ["/usr/local/bin/summarise", "-v"]'
            )
        out["argv"] = list(argv)
    if "description" in data:
        out["description"] = _text(data["description"], "description", 2000)
    if "workdir" in data:
        workdir = data["workdir"]
        out["workdir"] = _text(workdir, "workdir", 1000) or None if workdir is not None else None
    if "env" in data:
        env = data["env"] if data["env"] is not None else []
        if not isinstance(env, list) or not all(
            isinstance(e, str) and _ENV_NAME.match(e) for e in env
        ):
            raise AgentError("env", 'a list of environment variable names, e.g. ["LANG"]')
        out["env"] = list(env)
    if "secrets" in data:
        secrets = data["secrets"] if data["secrets"] is not None else {}
        if not isinstance(secrets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _ENV_NAME.match(k) and _ENV_NAME.match(v)
            for k, v in secrets.items()
        ):
            raise AgentError(
                "secrets",
                "an object {name in the agent's environment: name of the worker's variable "
                'holding it}, e.g. {"API_KEY": "SUMMARISER_API_KEY"}',
            )
        out["secrets"] = dict(secrets)
    for field, low, high in (
        ("max_concurrent", 1, MAX_CONCURRENT),
        ("timeout_seconds", 1, MAX_TIMEOUT_SECONDS),
        ("max_output_bytes", 1, MAX_OUTPUT_BYTES),
        ("retries", 0, MAX_RETRIES),
    ):
        if field in data:
            value = data[field]
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise AgentError(field, f"a whole number from {low} to {high}")
            out[field] = value
    return out


def _text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise AgentError(field, "must be a string")
    if len(value) > limit:
        raise AgentError(field, f"at most {limit} characters")
    return value.strip()


def create_agent(data: Mapping[str, Any], *, source: str = "console") -> Agent:
    """Validate and add a new agent; ``AgentError`` when invalid or the name is taken."""
    values = clean_definition(data)
    if get_agent(values["name"]) is not None:
        raise AgentError("name", f"there is already an agent named {values['name']!r}")
    agent = Agent(source=source, **values)
    db.session.add(agent)
    db.session.flush()
    return agent


def update_agent(agent: Agent, data: Mapping[str, Any]) -> Agent:
    """Change the fields given (validated); renaming checks the new name is free."""
    values = clean_definition(data, partial=True)
    if "name" in values and values["name"] != agent.name and get_agent(values["name"]):
        raise AgentError("name", f"there is already an agent named {values['name']!r}")
    for key, value in values.items():
        setattr(agent, key, value)
    agent.updated_at = clock.now()
    return agent


def delete_agent(agent: Agent) -> None:
    """Delete the agent; its runs stay (history), unfinished ones are cancelled."""
    runs = db.session.scalars(db.select(AgentRun).where(AgentRun.agent_name == agent.name))
    for run in runs:
        if not run.finished:
            cancel_run(run, actor=None, reason=f"the agent {agent.name} was deleted")
    db.session.delete(agent)


def request_run(
    case: Any,
    agent: Agent,
    prompt: str,
    *,
    actor: str | None = None,
    reply: bool = False,
    requires_approval: bool = False,
    priority: int = 100,
    delivery: Any = None,
) -> AgentRun:
    """Add a run of ``agent`` on ``case`` with ``prompt`` (sent on stdin), uncommitted.

    Queued at once (its task created) unless ``requires_approval``; records
    ``agent.run_requested`` on the case timeline. ``AgentError`` for an oversize prompt.
    """
    if not isinstance(prompt, str):
        raise AgentError("prompt", "must be a string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise AgentError("prompt", f"at most {MAX_PROMPT_CHARS} characters")
    run = AgentRun(
        agent_name=agent.name,
        case_id=case.id,
        prompt=prompt,
        reply=reply,
        priority=priority,
        requested_by=actor,
        approval="pending" if requires_approval else None,
        created_at=clock.now(),
    )
    db.session.add(run)
    db.session.flush()
    if not requires_approval:
        _queue(run, agent)
    record_event(
        case,
        "agent.run_requested",
        delivery=delivery,
        actor=actor,
        payload={
            "run_id": run.id,
            "agent": agent.name,
            "summary": f"Agent {agent.name} "
            + ("waits for approval" if requires_approval else "queued"),
        },
    )
    return run


def _queue(run: AgentRun, agent: Agent) -> None:
    task = create_task(
        RUN_KIND,
        f"agent_run:{run.id}",
        {"run_id": run.id},
        priority=run.priority,
        dedup=False,
        concurrency_key=f"agent:{agent.name}",
        concurrency_limit=agent.max_concurrent,
        max_attempts=agent.retries + 1,
    )
    run.task_id = task.id
    run.task = task


def approve_run(run: AgentRun, actor: str | None) -> AgentRun:
    """Queue a run that waits for approval; ``RunConflict`` otherwise (or its agent is
    gone)."""
    if run.status != "awaiting_approval":
        raise RunConflict(f"run {run.id} is {run.status}, not awaiting approval")
    agent = get_agent(run.agent_name)
    if agent is None:
        raise RunConflict(f"the agent {run.agent_name} no longer exists")
    run.approval, run.decided_by = "approved", actor
    _queue(run, agent)
    _event(run, "agent.run_approved", actor, f"Agent {run.agent_name} approved")
    return run


def cancel_run(run: AgentRun, actor: str | None, reason: str = "cancelled") -> AgentRun:
    """Cancel (or reject, while it awaits approval) a run; a running agent's process group
    is killed by its worker. ``RunConflict`` when it has finished."""
    if run.status == "awaiting_approval":
        run.approval, run.decided_by = "rejected", actor
        _event(run, "agent.run_rejected", actor, f"Agent {run.agent_name} rejected")
        return run
    if run.task is None:
        raise RunConflict(f"run {run.id} is {run.status}")
    try:
        cancel_task(run.task, reason)
    except NotCancellable:
        raise RunConflict(f"run {run.id} is {run.status}") from None
    run.outcome = "cancelled"
    _event(run, "agent.run_cancelled", actor, f"Agent {run.agent_name} cancelled")
    return run


def _event(run: AgentRun, type_: str, actor: str | None, summary: str) -> None:
    from app.cases.models import Case

    case = db.session.get(Case, run.case_id)
    if case is not None:
        record_event(
            case, type_, actor=actor, payload={"run_id": run.id, "agent": run.agent_name,
                                               "summary": summary}
        )  # fmt: skip


def get_run(run_id: str) -> AgentRun | None:
    return db.session.get(AgentRun, run_id) if isinstance(run_id, str) else None


def runs_of(case_id: int | None = None, status: str | None = None, limit: int = 100) -> list:
    """Newest runs first, of one case and/or in one status."""
    query = db.select(AgentRun).order_by(AgentRun.created_at.desc(), AgentRun.id.desc())
    if case_id is not None:
        query = query.where(AgentRun.case_id == case_id)
    runs = list(db.session.scalars(query.limit(limit * 5 if status else limit)).unique())
    if status:
        runs = [r for r in runs if r.status == status][:limit]
    return runs
