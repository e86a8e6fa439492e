"""Branch map: hypotheses forked from a case's root branch, with notes (SPEC C4).

Settings (environment, or ``create_app(test_config)``):

- ``BRANCH_LIMIT`` (``CASEHOOK_BRANCH_LIMIT``, default 25): branches per case, root included;
- ``ATTACHMENT_MAX_BYTES`` (``CASEHOOK_ATTACHMENT_MAX_BYTES``, default 10 MiB): per file.

Where attached files are kept is app/storage.py's (``ATTACHMENTS_URL``, ``ATTACHMENTS_DIR``).
"""

import os

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("branches", __name__)


@bp.record_once
def _settings(state: BlueprintSetupState) -> None:
    # Defaults only: a test config (or a deployment's) set before registration wins.
    config, env = state.app.config, os.environ
    config.setdefault("BRANCH_LIMIT", int(env.get("CASEHOOK_BRANCH_LIMIT", 25)))
    config.setdefault(
        "ATTACHMENT_MAX_BYTES", int(env.get("CASEHOOK_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
    )


from app.branches import events, models, panel, routes, summaries  # noqa: E402, F401
