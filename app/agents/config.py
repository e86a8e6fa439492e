"""``agents:`` in the config files (``app/webhooks/config_sync.py``)::

    agents:
      - name: summarise
        argv: ["/opt/agents/summarise.sh"]
        description: Summarises a case
        max_concurrent: 2
        timeout_seconds: 300
        env: [LANG]
        secrets: {API_KEY: SUMMARISER_API_KEY}   # values come from the worker's environment

Synced like endpoints: config-owned agents are created, updated and (when no file declares
them any more) deleted; agents made in the console, API or CLI are left alone, and a file
declaring one of their names is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.agents import service
from app.agents.models import Agent
from app.agents.service import AgentError
from app.extensions import db

SOURCE = "config"


def load_agents(config_dir: Path) -> tuple[list[dict], list[str]]:
    """``(definitions, problems)`` from every ``agents:`` list in ``config_dir``'s YAML
    files (unreadable files are reported by the endpoints' loader)."""
    declared: list[dict] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in sorted([*config_dir.glob("*.yaml"), *config_dir.glob("*.yml")]):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        items = document.get("agents", []) if isinstance(document, dict) else []
        if not isinstance(items, list):
            problems.append(f"{path.name}: 'agents' must be a list")
            continue
        for index, item in enumerate(items, 1):
            where = f"{path.name} agent #{index}"
            if not isinstance(item, dict):
                problems.append(f"{where}: each agent must be a mapping")
                continue
            try:
                values = service.clean_definition(item)
            except AgentError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if values["name"] in seen:
                problems.append(f"{where}: agent {values['name']!r} is already declared in "
                                f"{seen[values['name']]}")  # fmt: skip
                continue
            seen[values["name"]] = path.name
            declared.append(values)
    return declared, problems


def sync_agents(declared: list[dict]) -> tuple[list[str], list[str]]:
    """Make config-owned agents match ``declared``; ``(changes, problems)`` (uncommitted)."""
    changes: list[str] = []
    problems: list[str] = []
    names = set()
    for values in declared:
        name = values["name"]
        names.add(name)
        agent = service.get_agent(name)
        if agent is not None and agent.source != SOURCE:
            problems.append(f"agent {name!r} was made in the {agent.source}; rename one of them")
            continue
        full = _with_defaults(values)
        if agent is None:
            db.session.add(Agent(source=SOURCE, **full))
            changes.append(f"create agent {name}")
            continue
        differing = [key for key, value in full.items() if getattr(agent, key) != value]
        if differing:
            service.update_agent(agent, {k: full[k] for k in differing})
            changes.append(f"update agent {name}: {', '.join(differing)}")
    for agent in db.session.scalars(db.select(Agent).where(Agent.source == SOURCE)):
        if agent.name not in names:
            service.delete_agent(agent)
            changes.append(f"delete agent {agent.name}")
    db.session.flush()
    return changes, problems


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """Every column: what a file leaves out goes back to the default on the next sync."""
    return {
        "description": "",
        "workdir": None,
        "env": [],
        "secrets": {},
        "max_concurrent": 1,
        "timeout_seconds": 600,
        "max_output_bytes": 65536,
        "retries": 0,
        **values,
    }
