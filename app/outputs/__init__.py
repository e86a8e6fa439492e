"""Resolution outputs (SPEC C6): the three documents written when a case is resolved.

The writers that compose them (and every other generated text) live in ``app.writing``.

- ``service.py``: ``resolve_case``, writing, editing, approving, regenerating;
- ``jobs.py``: the tasks that write them; ``routes.py``: the console; ``panel.py``: the case
  page panel; ``app/api/outputs.py``: the JSON API.
"""

from flask import Blueprint

bp = Blueprint("outputs", __name__)

from app.outputs import jobs, models, panel, routes  # noqa: E402, F401
