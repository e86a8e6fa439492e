"""Agents (SPEC C8): registered external commands run on a case by a worker.

- ``models.py``: ``Agent`` and ``AgentRun``; ``service.py``: validation, requesting,
  approving, cancelling runs; ``execute.py``: the task kind ``agents.run`` (the process,
  its timeout, cancel and output); ``routes.py``: the console (agents pages, the case
  panel's actions); ``panel.py``: the case page panel; ``cli.py``: ``flask agents``;
  ``app/api/agents.py``: the JSON API.
"""

from flask import Blueprint

bp = Blueprint("agents", __name__)

from app.agents import models, panel, routes  # noqa: E402, F401
