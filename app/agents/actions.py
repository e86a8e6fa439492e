"""The ``run_agent`` command action: a delivery opens or updates its case and asks for a run.

The payload is untrusted: it reaches the agent only inside the prompt (on stdin), never in
its argv, environment or file names.
"""

from __future__ import annotations

from typing import Any

from app.agents import service
from app.cases import service as cases
from app.webhooks.commands import Command, render


def run_agent_action(
    command: Command, facts: Any, delivery: Any, subject: dict, event_type: str
) -> str:
    """Open or update the delivery's case, then request a run of ``command.agent`` with the
    rendered ``prompt_template`` (default: the case title and summary); returns the
    outcome sentence for the deliveries log. An unknown agent leaves the case updated and
    says so."""
    case, outcome = cases.update_case(facts, delivery)
    agent = service.get_agent(command.agent)
    if agent is None:
        return f"{outcome}; no agent named {command.agent!r}, nothing run"
    prompt = render(command.prompt_template, subject, event_type) if command.prompt_template else ""
    prompt = prompt or "\n\n".join(p for p in (facts.title, facts.summary) if p)
    run = service.request_run(
        case,
        agent,
        prompt[: service.MAX_PROMPT_CHARS],
        reply=command.reply,
        requires_approval=command.requires_approval,
        priority=command.priority,
        delivery=delivery,
    )
    waits = "waits for approval" if command.requires_approval else "queued"
    return f"{outcome}; agent {agent.name} {waits} (run {run.id})"
