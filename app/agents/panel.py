"""What the agents panel (``templates/agents/_panel.html``) on the case page is drawn from."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_login import current_user

from app.agents import service
from app.cases.panels import register_panel

#: How often the panel refreshes while a run is unfinished (milliseconds).
POLL_MS = 1000


def panel_context(case: Any, *, error: str | None = None, prompt: str | None = None,
                  agent: str | None = None) -> dict:  # fmt: skip
    """The panel's context (keys prefixed ``agent_``): the case's runs (newest first), the
    agents to pick from, whether to poll, and a refused request's ``error``/``prompt``."""
    runs = service.runs_of(case.id, limit=20)
    return {
        "agent_runs": runs,
        "agent_choices": service.all_agents(),
        "agent_polling": any(not r.finished for r in runs),
        "agent_poll_ms": current_app.config.get("AGENTS_POLL_MS", POLL_MS),
        "agent_can_run": current_user.is_authenticated and current_user.has_role("engineer"),
        "agent_error": error,
        "agent_prompt": prompt,
        "agent_selected": agent,
    }


@register_panel
def provide(case: Any) -> dict[str, Any]:
    return panel_context(case)
