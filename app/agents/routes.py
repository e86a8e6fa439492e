"""Console: the agents pages (admins manage) and the case panel's run actions.

Panel actions answer the panel fragment for htmx (422 with the reason inline when refused)
and redirect to the case page for a plain form post.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.accounts.auth import require_role
from app.agents import bp, service
from app.agents.panel import panel_context
from app.agents.service import AgentError, RunConflict
from app.cases.models import Case
from app.extensions import db
from app.templating import htmx_response


@bp.get("/agents")
@require_role("viewer")
def index():
    return render_template("agents/index.html", agents=service.all_agents(), form={}, error=None)


@bp.post("/agents")
@require_role("admin")
def create():
    form = request.form.to_dict()
    try:
        agent = service.create_agent(_definition(form))
    except AgentError as exc:
        db.session.rollback()
        return render_template("agents/index.html", agents=service.all_agents(), form=form,
                               error=str(exc)), 422  # fmt: skip
    db.session.commit()
    flash(f"Agent {agent.name} created.", "info")
    return redirect(url_for("agents.index"), code=303)


@bp.get("/agents/<name>")
@require_role("viewer")
def show(name: str):
    agent = service.agent_or_404(name)
    return render_template("agents/show.html", agent=agent, form=_as_form(agent), error=None)


@bp.post("/agents/<name>")
@require_role("admin")
def update(name: str):
    agent = service.agent_or_404(name)
    form = request.form.to_dict()
    try:
        service.update_agent(agent, _definition(form))
    except AgentError as exc:
        db.session.rollback()
        return render_template("agents/show.html", agent=service.agent_or_404(name), form=form,
                               error=str(exc)), 422  # fmt: skip
    db.session.commit()
    flash(f"Agent {agent.name} saved.", "info")
    return redirect(url_for("agents.show", name=agent.name), code=303)


@bp.post("/agents/<name>/delete")
@require_role("admin")
def delete(name: str):
    service.delete_agent(service.agent_or_404(name))
    db.session.commit()
    flash(f"Agent {name} deleted.", "info")
    return redirect(url_for("agents.index"), code=303)


@bp.get("/cases/<int:case_id>/agent-runs")
@require_role("viewer")
def panel(case_id: int):
    case = _case(case_id)
    if not request.htmx:
        return redirect(_case_url(case))
    return _panel(case)


@bp.post("/cases/<int:case_id>/agent-runs")
@require_role("engineer")
def run(case_id: int):
    """Run the form's ``agent`` with its ``prompt`` on the case."""
    case = _case(case_id)
    name, prompt = request.form.get("agent", ""), request.form.get("prompt", "")
    agent = service.get_agent(name)
    try:
        if agent is None:
            raise AgentError("agent", "pick an agent")
        service.request_run(case, agent, prompt, actor=current_user.email)
    except AgentError as exc:
        db.session.rollback()
        return _refused(case, exc.message, prompt=prompt, agent=name)
    db.session.commit()
    return _done(case, f"Agent {name} queued.")


@bp.post("/cases/<int:case_id>/agent-runs/<run_id>/<action>")
@require_role("engineer")
def decide(case_id: int, run_id: str, action: str):
    """``cancel`` (or reject, while it awaits approval) or ``approve`` a run."""
    case = _case(case_id)
    found = service.get_run(run_id)
    if found is None or found.case_id != case.id or action not in ("cancel", "approve"):
        abort(404)
    try:
        if action == "approve":
            service.approve_run(found, current_user.email)
        else:
            service.cancel_run(found, current_user.email)
    except RunConflict as exc:
        db.session.rollback()
        return _refused(case, str(exc))
    db.session.commit()
    return _done(case, None)


# ---------------------------------------------------------------------------------------------


def _definition(form: dict[str, str]) -> dict[str, Any]:
    """The agent form's fields as a definition (``argv`` and ``secrets`` are JSON, ``env``
    names separated by commas or spaces)."""
    data: dict[str, Any] = {}
    for key in ("name", "description", "workdir", "max_concurrent", "timeout_seconds",
                "max_output_bytes", "retries"):  # fmt: skip
        if key in form:
            data[key] = form[key].strip()
    if not data.get("workdir"):
        data["workdir"] = None
    for key in ("argv", "secrets"):
        if form.get(key, "").strip():
            try:
                data[key] = json.loads(form[key])
            except ValueError:
                raise AgentError(key, "must be JSON") from None
        elif key == "argv":
            data[key] = None
    data["env"] = [p for p in form.get("env", "").replace(",", " ").split() if p]
    return data


def _as_form(agent: Any) -> dict[str, Any]:
    values = agent.to_dict()
    values["argv"] = json.dumps(agent.argv)
    values["secrets"] = json.dumps(agent.secrets) if agent.secrets else ""
    values["env"] = " ".join(agent.env or [])
    values["workdir"] = agent.workdir or ""
    return values


def _case(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


def _case_url(case: Case) -> str:
    return url_for("cases.show", case_id=case.id) + "#agents-panel"


def _panel(case: Case, status: int = 200, **context: Any):
    html = render_template("agents/_panel.html", case=case, **panel_context(case, **context))
    return htmx_response(html, status)


def _done(case: Case, notice: str | None):
    if request.htmx:
        return _panel(case)
    if notice:
        flash(notice, "info")
    return redirect(_case_url(case), code=303)


def _refused(case: Case, message: str, **context: Any):
    if request.htmx:
        return _panel(case, 422, error=message, **context)
    flash(message, "error")
    return redirect(_case_url(case), code=303)
