"""``/api/agents`` and ``/api/agent-runs``: registered agents and their runs (C8).

Admins define agents; engineers run them on cases (and approve or cancel runs); viewers
read. Refusals are ``{"error", "detail", "field"?}``: 400 an invalid definition or run
request (``field`` names the part), 404 no such agent or run, 409 ``run_conflict`` when the
run's state does not allow it.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort
from flask_login import current_user

from app.accounts.auth import require_role
from app.agents import service
from app.agents.models import AgentRun
from app.api import bp
from app.api.common import case_or_404
from app.api.schemas.agents import (
    Agent,
    AgentBody,
    AgentList,
    AgentPatch,
    Run,
    RunBody,
    RunList,
    RunsQuery,
)
from app.api.spec import operation
from app.extensions import db


@bp.get("/agents")
@require_role("viewer")
@operation(responses={200: AgentList}, tag="agents")
def list_agents() -> AgentList:
    """The registered agents, by name."""
    return AgentList(agents=[Agent.of(a) for a in service.all_agents()])


@bp.post("/agents")
@require_role("admin")
@operation(body=AgentBody, responses={201: Agent}, tag="agents")
def create_agent(body: AgentBody) -> tuple[Agent, int]:
    """Register an agent (admins)."""
    agent = service.create_agent(body.model_dump(exclude_unset=True), source="api")
    db.session.commit()
    return Agent.of(agent), 201


@bp.get("/agents/<name>")
@require_role("viewer")
@operation(responses={200: Agent}, tag="agents")
def show_agent(name: str) -> Agent:
    """One agent."""
    return Agent.of(service.agent_or_404(name))


@bp.patch("/agents/<name>")
@require_role("admin")
@operation(body=AgentPatch, responses={200: Agent}, tag="agents")
def update_agent(name: str, body: AgentPatch) -> Agent:
    """Change the fields given (admins); a new name must be free."""
    agent = service.agent_or_404(name)
    service.update_agent(agent, body.model_dump(exclude_unset=True))
    db.session.commit()
    return Agent.of(agent)


@bp.delete("/agents/<name>")
@require_role("admin")
@operation(responses={204: None}, tag="agents")
def delete_agent(name: str):
    """Delete an agent (admins): its runs stay, unfinished ones are cancelled."""
    service.delete_agent(service.agent_or_404(name))
    db.session.commit()
    return None, 204


@bp.post("/cases/<int:case_id>/agent-runs")
@require_role("engineer")
@operation(body=RunBody, responses={202: Run}, tag="agents")
def create_run(case_id: int, body: RunBody) -> tuple[Run, int]:
    """Run an agent on the case: queued at once, or awaiting approval with
    ``requires_approval``."""
    case = case_or_404(case_id)
    run = service.request_run(
        case,
        service.agent_or_404(body.agent),
        body.prompt,
        actor=current_user.email,
        priority=body.priority,
        requires_approval=body.requires_approval,
    )
    db.session.commit()
    return Run.of(run), 202


@bp.get("/agent-runs")
@require_role("viewer")
@operation(query=RunsQuery, responses={200: RunList}, tag="agents")
def list_runs(query: RunsQuery) -> RunList:
    """Runs, newest first; ``case_id`` and ``status`` filter."""
    return RunList(agent_runs=[Run.of(r) for r in service.runs_of(query.case_id, query.status)])


@bp.get("/agent-runs/<run_id>")
@require_role("viewer")
@operation(responses={200: Run}, tag="agents")
def show_run(run_id: str) -> Run:
    """One run with its output (``stdout``, ``stderr``, ``exit_code`` of the latest
    attempt)."""
    return Run.of(_run(run_id))


@bp.post("/agent-runs/<run_id>/cancel")
@require_role("engineer")
@operation(responses={200: Run}, tag="agents")
def cancel_run(run_id: str) -> Run:
    """Cancel a run that has not finished."""
    return _decide(_run(run_id), service.cancel_run)


@bp.post("/agent-runs/<run_id>/approve")
@require_role("engineer")
@operation(responses={200: Run}, tag="agents")
def approve_run(run_id: str) -> Run:
    """Approve a run awaiting approval: it is queued."""
    return _decide(_run(run_id), service.approve_run)


def _decide(run: AgentRun, action: Callable[[AgentRun, str], object]) -> Run:
    action(run, current_user.email)  # RunConflict (409) when its state does not allow it
    db.session.commit()
    return Run.of(run)


def _run(run_id: str) -> AgentRun:
    run = service.get_run(run_id)
    if run is None:
        abort(404, description=f"there is no agent run {run_id!r}")
    return run
