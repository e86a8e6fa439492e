"""The case page's **Reply to source** panel and ``POST /api/cases/<id>/reply``.

Thin: ``check_reply`` says whether and why not a case can be replied to, ``request_reply``
(app/replies/tasks.py) queues the reply; the worker posts it.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.accounts.auth import require_role
from app.api.common import case_or_404, json_body
from app.cases.models import Case
from app.cases.panels import register_panel
from app.errors import DomainError
from app.extensions import db
from app.replies import bp
from app.replies.tasks import MAX_TEXT, pending_replies, request_reply
from app.tasks.models import UNFINISHED
from app.templating import htmx_response
from app.webhooks import reply_settings
from app.webhooks.models import Endpoint
from app.webhooks.providers import get_provider

#: Sent when a reply settled, so the timeline (the actions panel) shows its case.replied.
CASE_CHANGED = json.dumps({"case-changed": {"source": "replies"}})


class ReplyRefused(DomainError, ValueError):
    """The reply cannot be asked for; ``status`` (400, 409) and ``error`` slug."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail, status=status, error=error)


def reply_endpoint(case: Case) -> tuple[Endpoint | None, str | None]:
    """The endpoint ``case`` replies through, or None and why it cannot reply (a sentence
    saying what to set up)."""
    endpoint = db.session.get(Endpoint, case.endpoint_id) if case.endpoint_id else None
    provider = get_provider(case.provider)
    name = (provider.display_name if provider else "") or case.provider
    if endpoint is None:
        return None, "the case's endpoint was deleted: there is nowhere to reply through"
    if not case.source:
        return None, f"the case's deliveries name nothing a {name} reply could go to"
    if reply_settings.token_state(endpoint.settings) == "none":
        return None, (
            f"the endpoint {endpoint.name} has no reply token: an admin sets one on the "
            "endpoint page (Reply to source) or in settings.reply"
        )
    return endpoint, None


def check_reply(case: Case, text: Any) -> tuple[Endpoint, str]:
    """The endpoint and the stripped text of a reply to ``case``; ``ReplyRefused``."""
    if not isinstance(text, str) or not text.strip():
        raise ReplyRefused(400, "invalid_reply", "write the reply first")
    if len(text) > MAX_TEXT:
        raise ReplyRefused(400, "invalid_reply", f"a reply is at most {MAX_TEXT} characters")
    endpoint, why = reply_endpoint(case)
    if endpoint is None:
        raise ReplyRefused(409, "cannot_reply", why or "cannot reply")
    return endpoint, text.strip()


@register_panel
def provide(case: Case) -> dict:
    """Context for ``replies/_panel.html``."""
    endpoint, why = reply_endpoint(case)
    tasks = pending_replies(case)
    return {
        "reply_ready": endpoint is not None,
        "reply_refusal": why,
        "reply_tasks": tasks,
        "reply_pending": any(task.status in UNFINISHED for task in tasks),
    }


def _panel(case: Case, status: int = 200, *, changed: bool = False, **context: Any):
    response = htmx_response(
        render_template("replies/_panel.html", case=case, **provide(case), **context), status
    )
    if changed:
        response.headers["HX-Trigger"] = CASE_CHANGED
    return response


@bp.get("/cases/<int:case_id>/replies")
@require_role("viewer")
def panel(case_id: int):
    """The panel; while replies are pending it polls itself with ``watching=1``, and the
    answer that finds them settled announces ``case-changed`` (the timeline reloads)."""
    case = db.get_or_404(Case, case_id, description=f"there is no case {case_id}")
    context = provide(case)
    settled = request.args.get("watching") == "1" and not context["reply_pending"]
    return _panel(case, changed=settled)


@bp.post("/cases/<int:case_id>/reply")
@require_role("engineer")
def reply(case_id: int):
    """Queue a reply (form field ``text``, Markdown) to the case's source. htmx: the panel;
    otherwise back to the case page."""
    case = db.get_or_404(Case, case_id, description=f"there is no case {case_id}")
    text = request.form.get("text", "")
    try:
        endpoint, text = check_reply(case, text)
    except ReplyRefused as exc:
        if not request.htmx:
            flash(exc.detail)
            return redirect(url_for("cases.show", case_id=case.id))
        return _panel(case, 422 if exc.status == 400 else exc.status, reply_error=exc.detail,
                      reply_text=text)  # fmt: skip
    request_reply(endpoint, case.source, text, case=case, actor=current_user.email)
    db.session.commit()
    if not request.htmx:
        flash("Reply queued: it is posted to the source in a moment.")
        return redirect(url_for("cases.show", case_id=case.id))
    return _panel(case, reply_flash="Reply queued: it is posted to the source in a moment.")


@bp.post("/api/cases/<int:case_id>/reply")
@require_role("engineer")
def api_reply(case_id: int):
    """``{"text": "<Markdown>"}`` → ``202 {"task": task}``: the reply is queued (its outcome
    comes as the ``case.replied`` event). ``400`` no text; ``409 cannot_reply`` when the
    case has no source or its endpoint no reply token."""
    case = case_or_404(case_id)
    body = json_body('send {"text": "…"}')
    try:
        endpoint, text = check_reply(case, body.get("text"))
    except ReplyRefused as exc:
        if exc.status == 400:
            abort(400, exc.detail)
        return jsonify(error=exc.error, detail=exc.detail), exc.status
    task = request_reply(endpoint, case.source, text, case=case, actor=current_user.email,
                         origin="api")  # fmt: skip
    db.session.commit()
    return jsonify(task=task.to_dict()), 202
