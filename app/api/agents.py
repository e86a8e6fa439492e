"""``/api/agents`` and ``/api/agent-runs``: registered agents and their runs (C8).

- ``GET /api/agents`` → ``{"agents": [agent...]}``; ``POST /api/agents`` ``{"name", "argv",
  "description"?, "workdir"?, "env"?, "secrets"?, "max_concurrent"?, "timeout_seconds"?,
  "max_output_bytes"?, "retries"?}`` → 201 the agent (admins).
- ``GET/PATCH/DELETE /api/agents/<name>`` (PATCH and DELETE: admins).
- ``POST /api/cases/<id>/agent-runs`` ``{"agent", "prompt", "priority"?,
  "requires_approval"?}`` → 202 the run (engineers).
- ``GET /api/agent-runs?case_id=&status=`` → ``{"agent_runs": [run...]}``;
  ``GET /api/agent-runs/<id>`` → ``{"id", "agent", "case_id", "status", "exit_code",
  "stdout", "stderr", "attempts", "queued_at", "started_at", "finished_at", ...}``.
- ``POST /api/agent-runs/<id>/cancel`` and ``/approve`` → the run; 409 when its state does
  not allow it.

Errors are ``{"error", "detail"}`` (400 with ``field`` for an invalid definition).
"""

from __future__ import annotations

from flask import abort, jsonify, request
from flask_login import current_user

from app.accounts.auth import require_role
from app.agents import service
from app.agents.models import Agent, AgentRun
from app.agents.service import AgentError, RunConflict
from app.api import bp
from app.api.common import case_or_404, json_body
from app.extensions import db
from app.inputs import as_id

STATUSES = ("awaiting_approval", "queued", "running", "succeeded", "failed", "timed_out",
            "cancelled")  # fmt: skip


def _invalid(exc: AgentError):
    db.session.rollback()
    response = jsonify(error="invalid_agent", detail=str(exc), field=exc.field)
    response.status_code = 400
    return response


def _agent(name: str) -> Agent:
    agent = service.get_agent(name)
    if agent is None:
        abort(404, description=f"there is no agent {name!r}")
    return agent


def _run(run_id: str) -> AgentRun:
    run = service.get_run(run_id)
    if run is None:
        abort(404, description=f"there is no agent run {run_id!r}")
    return run


@bp.get("/agents")
@require_role("viewer")
def list_agents():
    return jsonify({"agents": [a.to_dict() for a in service.all_agents()]})


@bp.post("/agents")
@require_role("admin")
def create_agent():
    body = json_body('send a JSON object: {"name": "summarise", "argv": ["/usr/bin/summarise"]}')
    try:
        agent = service.create_agent(body, source="api")
    except AgentError as exc:
        return _invalid(exc)
    db.session.commit()
    return jsonify(agent.to_dict()), 201


@bp.get("/agents/<name>")
@require_role("viewer")
def show_agent(name: str):
    return jsonify(_agent(name).to_dict())


@bp.patch("/agents/<name>")
@require_role("admin")
def update_agent(name: str):
    agent = _agent(name)
    try:
        service.update_agent(agent, json_body())
    except AgentError as exc:
        return _invalid(exc)
    db.session.commit()
    return jsonify(agent.to_dict())


@bp.delete("/agents/<name>")
@require_role("admin")
def delete_agent(name: str):
    service.delete_agent(_agent(name))
    db.session.commit()
    return "", 204


@bp.post("/cases/<int:case_id>/agent-runs")
@require_role("engineer")
def create_run(case_id: int):
    case = case_or_404(case_id)
    body = json_body('send a JSON object: {"agent": "summarise", "prompt": "..."}')
    name = body.get("agent")
    if not isinstance(name, str) or not name:
        abort(400, description='name the agent: {"agent": "summarise", "prompt": "..."}')
    agent = service.get_agent(name)
    if agent is None:
        abort(404, description=f"there is no agent {name!r}")
    priority = body.get("priority", 100)
    if isinstance(priority, bool) or not isinstance(priority, int):
        abort(400, description="priority must be a whole number (lower runs first)")
    approval = body.get("requires_approval", False)
    if not isinstance(approval, bool):
        abort(400, description="requires_approval must be true or false")
    try:
        run = service.request_run(
            case,
            agent,
            body.get("prompt", ""),
            actor=current_user.email,
            priority=priority,
            requires_approval=approval,
        )
    except AgentError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    db.session.commit()
    return jsonify(run.to_dict()), 202


@bp.get("/agent-runs")
@require_role("viewer")
def list_runs():
    case_id = request.args.get("case_id")
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400, description=f"status must be one of {', '.join(STATUSES)}")
    if case_id and as_id(case_id) is None:
        abort(400, description="case_id must be a case id")
    runs = service.runs_of(as_id(case_id) if case_id else None, status)
    return jsonify({"agent_runs": [r.to_dict() for r in runs]})


@bp.get("/agent-runs/<run_id>")
@require_role("viewer")
def show_run(run_id: str):
    return jsonify(_run(run_id).to_dict())


@bp.post("/agent-runs/<run_id>/cancel")
@require_role("engineer")
def cancel_run(run_id: str):
    return _decide(_run(run_id), service.cancel_run)


@bp.post("/agent-runs/<run_id>/approve")
@require_role("engineer")
def approve_run(run_id: str):
    return _decide(_run(run_id), service.approve_run)


def _decide(run: AgentRun, action):
    try:
        action(run, current_user.email)
    except RunConflict as exc:
        db.session.rollback()
        response = jsonify(error="run_conflict", detail=str(exc), status=run.status)
        response.status_code = 409
        return response
    db.session.commit()
    return jsonify(run.to_dict())
