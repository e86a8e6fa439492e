"""Resolution outputs and the writers that compose every generated text (SPEC C6).

- ``writers.py``: the writer interface, the built-in writer, ``get_writer()``;
  ``llm.py``: the LLM writer (``LLM_BASE_URL``, ``LLM_MODEL``, ``LLM_API_KEY``,
  ``LLM_TIMEOUT_SECONDS``);
- ``context.py``: ``case_context(case)``, the plain-data case every writer reads;
- ``service.py``: ``resolve_case``, writing, editing, approving, regenerating;
- ``jobs.py``: the RQ jobs; ``routes.py``: the console; ``panel.py``: the case page panel;
  ``app/api/outputs.py``: the JSON API.
"""

from flask import Blueprint

bp = Blueprint("outputs", __name__)

from app.outputs import models, panel, routes  # noqa: E402, F401
