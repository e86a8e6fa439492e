"""Console: the handoff modal, claiming, the queue page, and the case page's handoff panel.

Form errors answer 422 with the form fragment (htmx swaps it in place); so do refusals that
the person can act on (the case already waits, the handoff was claimed meanwhile), with the
reason shown where they clicked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2 import TemplateNotFound

from app import clock
from app.accounts.auth import require_role
from app.accounts.models import User
from app.cases import lifecycle
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.cases.panels import register_panel
from app.extensions import db
from app.handoffs import bp, service
from app.handoffs.models import INTENTS, PRIORITIES, Handoff
from app.handoffs.service import HandoffConflict, HandoffInputError
from app.inputs import as_id
from app.templating import as_utc, htmx_response

#: Form fields each intent reads; the modal shows all, CSS hides the other intent's.
FIELDS = {
    "park": ("notes", "waiting_on", "resume_at", "next_step"),
    "escalate": ("notes", "priority", "to_user", "next_step"),
}

#: How the form names its fields in messages.
FIELD_NAMES = {
    "notes": "The note",
    "waiting_on": "“Waiting on whom”",
    "resume_at": "The resume time",
    "priority": "The priority",
    "to_user": "The person",
    "next_step": "The next step",
}


# -- the case page's panel -----------------------------------------------------------------


@register_panel
def provide(case: Case) -> dict:
    """Context for ``handoffs/_panel.html``: history (newest first), the handoff waiting,
    and the case's active/parked time so far."""
    history = service.handoffs_of(case)
    active, parked = lifecycle.live_seconds(case)
    return {
        "handoff_history": list(reversed(history)),
        "handoff_pending": service.pending_handoff(case),
        "handoff_time": {
            "active": service.format_duration(active),
            "parked": service.format_duration(parked),
        },
        "handoff_can_start": case.status in lifecycle.LIVE_STATUSES,
    }


@bp.app_template_filter("duration")
def duration_filter(seconds: Any) -> str:
    """``{{ 7500|duration }}`` → "2 h 5 min"."""
    return service.format_duration(seconds or 0)


def _panel(case: Case, *, oob: bool = False, **extra: Any) -> str:
    return render_template("handoffs/_panel.html", case=case, oob=oob, **provide(case), **extra)


def _status_badge(case: Case) -> str:
    """The case header and timeline out of band, so the page agrees with the case after a
    handoff or claim: ``cases/_head.html`` and ``cases/_timeline.html`` with the case page's
    own context; just the status badge (``#case-status``) where those are not available."""
    try:
        from app.cases.routes import _actions_context

        return render_template(
            "cases/_head.html", oob=True, **_actions_context(case)
        ) + render_template("cases/_timeline.html", oob=True, case=case)
    except (ImportError, TemplateNotFound):
        return render_template("handoffs/_status_oob.html", case=case)


#: Sent after a handoff or claim (the case's status changed); the other panels refresh
#: (``data-case-panel``, static/console.js). The source keeps this panel from reloading.
CASE_CHANGED = json.dumps({"case-changed": {"source": "handoffs"}})


@bp.get("/cases/<int:case_id>/handoffs/panel")
@require_role("viewer")
def panel(case_id: int):
    """The handoff panel alone: it reloads itself when another feature changes the case."""
    return htmx_response(_panel(_case_or_404(case_id)))


# -- the modal -----------------------------------------------------------------------------


def _engineers() -> list[User]:
    return list(
        db.session.scalars(
            db.select(User)
            .where(User.active.is_(True), User.role.in_(("engineer", "admin")))
            .order_by(User.email)
        )
    )


def _modal(
    case: Case,
    values: dict | None = None,
    errors: dict | None = None,
    error: str | None = None,
    status: int = 200,
):
    context = {
        "case": case,
        "values": values or {"intent": "park", "priority": "normal"},
        "errors": errors or {},
        "error": error,
        "engineers": _engineers(),
        "priorities": PRIORITIES,
        "pending": service.pending_handoff(case),
    }
    template = "handoffs/_modal.html" if request.htmx else "handoffs/new.html"
    return htmx_response(render_template(template, **context), status)


def _case_or_404(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


@bp.get("/cases/<int:case_id>/handoff")
@require_role("engineer")
def new(case_id: int):
    """The handoff form: the modal fragment (htmx, into ``#modal``) or a page of its own;
    ``intent`` (park or escalate: the case toolbar's buttons) chooses the intent shown first."""
    intent = request.args.get("intent")
    values = {"intent": intent if intent in ("park", "escalate") else "park", "priority": "normal"}
    return _modal(_case_or_404(case_id), values)


@bp.post("/cases/<int:case_id>/handoffs")
@require_role("engineer")
def create(case_id: int):
    """Park or escalate from the modal. Success (htmx): empty body (the modal closes) with the
    refreshed panel and status badge out of band, and ``HX-Trigger: case-changed``;
    without htmx a redirect to the case. Errors: 422 with the form and its messages."""
    case = _case_or_404(case_id)
    values = {
        key: (request.form.get(key) or "").strip()
        for key in (
            "intent",
            "notes",
            "waiting_on",
            "resume_at",
            "priority",
            "to_user",
            "next_step",
        )
    }
    errors: dict[str, str] = {}
    intent = values["intent"]
    if intent not in INTENTS:
        errors["intent"] = "Choose park or escalate."
    kwargs: dict[str, Any] = {}
    if intent == "park" and values["resume_at"]:
        try:
            kwargs["resume_at"] = datetime.fromisoformat(values["resume_at"]).replace(tzinfo=UTC)
        except ValueError:
            errors["resume_at"] = "Give a date and time, e.g. 2026-11-21 09:00."
    if intent == "escalate" and values["to_user"]:
        user_id = as_id(values["to_user"])  # "²" is a digit too, and ids end at MAX_ID
        to_user = db.session.get(User, user_id) if user_id else None
        if to_user is None:
            errors["to_user"] = "Choose someone from the list."
        kwargs["to_user"] = to_user
    if not values["notes"]:
        errors["notes"] = (
            "Say what you are waiting on." if intent == "park" else "Say why it needs escalating."
        )
    if errors:
        return _modal(case, values, errors, status=422)
    wanted = FIELDS[intent]
    try:
        handoff = service.create_handoff(
            case,
            intent,
            values["notes"],
            values["priority"] if "priority" in wanted and values["priority"] else "normal",
            current_user._get_current_object(),
            waiting_on=values["waiting_on"] if "waiting_on" in wanted else None,
            next_step=values["next_step"] or None,
            **kwargs,
        )
    except HandoffInputError as exc:
        db.session.rollback()
        message = str(exc)
        if exc.field in FIELDS[intent]:
            if message.startswith(exc.field):  # "resume_at must be..." → "The resume time ..."
                message = FIELD_NAMES[exc.field] + message[len(exc.field) :]
            return _modal(case, values, {exc.field: _sentence(message)}, status=422)
        return _modal(case, values, error=_sentence(message), status=422)
    except (TransitionError, HandoffConflict) as exc:
        db.session.rollback()
        return _modal(case, values, error=_sentence(str(exc)), status=422)
    db.session.commit()
    done = "Parked" if intent == "park" else "Escalated"
    if not request.htmx:
        flash(f"{done} case #{case.id} (handoff #{handoff.id}).")
        return redirect(url_for("cases.show", case_id=case.id))
    body = _panel(case, oob=True, flash_message=f"{done}: handoff #{handoff.id} is in the queue.")
    # The nav's queue badge follows too (an escalation joins the claim queue).
    body += _status_badge(case) + render_template("handoffs/_nav_count.html")
    response = current_app.make_response(body)
    response.headers["HX-Trigger"] = CASE_CHANGED
    return response


# -- claiming ------------------------------------------------------------------------------


@bp.post("/handoffs/<int:handoff_id>/claim")
@require_role("engineer")
def claim(handoff_id: int):
    """Claim a handoff. From the queue (htmx target ``handoff-row-<id>``) the row becomes the
    briefing with a link to the case; from the case panel (target ``handoff-panel``) the
    panel shows it; without htmx, a redirect to the case. A claim that cannot happen answers
    422 with the reason in the same place."""
    handoff = db.get_or_404(Handoff, handoff_id, description=f"there is no handoff {handoff_id}")
    target = request.htmx.target if request.htmx else None
    try:
        service.claim(handoff, current_user._get_current_object())
    except HandoffConflict as exc:
        db.session.rollback()
        db.session.refresh(handoff)
        return _claimed_response(handoff, target, error=_sentence(str(exc)), status=422)
    db.session.commit()
    return _claimed_response(handoff, target)


def _claimed_response(
    handoff: Handoff, target: str | None, error: str | None = None, status: int = 200
):
    case = handoff.case
    if target == "handoff-panel":
        body = _panel(case, claim_error=error, just_claimed=None if error else handoff.id)
        body += _status_badge(case) + render_template("handoffs/_nav_count.html")
    elif target and target.startswith("handoff-row-"):
        # The row says what happened; the briefing opens in its own panel and the tab and
        # nav counts follow the claim (out of band).
        body = render_template(
            "handoffs/_claimed_row.html",
            handoff=handoff,
            error=error,
            **_queue_context(request.form.get("intent", "")),
        )
    else:
        if error:
            abort(409, description=error)
        flash(f"You claimed case #{case.id}; read the briefing under Handoffs.")
        return redirect(url_for("cases.show", case_id=case.id, _anchor="handoff-panel"))
    response = current_app.make_response((body, status))
    if not error:
        response.headers["HX-Trigger"] = CASE_CHANGED
    return response


# -- the queue -----------------------------------------------------------------------------


def _queue_context(intent: str = "") -> dict:
    """The queue page's context: the claim queue (escalations) or, for ``intent="park"``,
    the parked cases by resume time; the count of each tab; which parked ones are due."""
    waiting = service.queue()  # one query; both tabs and their counts come from it
    escalated = [h for h in waiting if h.intent == "escalate"]
    parked = service.parked(waiting)
    now = clock.now()
    return {
        "handoffs": parked if intent == "park" else escalated,
        "intent": "park" if intent == "park" else "",
        "counts": {"escalate": len(escalated), "park": len(parked)},
        "due": {h.id for h in parked if h.resume_at and as_utc(h.resume_at) <= now},
    }


@bp.get("/queue")
@require_role("viewer")
def queue():
    """The claim queue: escalations waiting for someone, elevated first, then oldest.
    ``?intent=park`` lists the parked cases instead (they wait on someone, not in the claim
    queue), due first; kept in the URL. Full page, or the ``_queue`` fragment for htmx."""
    context = _queue_context(request.args.get("intent", ""))
    if request.htmx:
        response = current_app.make_response(render_template("handoffs/_queue.html", **context))
        response.headers["HX-Push-Url"] = url_for(
            "handoffs.queue", **({"intent": "park"} if context["intent"] else {})
        )
    else:
        response = current_app.make_response(render_template("handoffs/queue.html", **context))
    response.vary.add("HX-Request")
    return response


@bp.app_context_processor
def _nav_queue_count() -> dict:
    # A function, not a number: the COUNT runs only when a console page's nav calls it
    # (never for webhook or API requests, which render no page).
    return {"queue_count": service.queue_count}


def _sentence(message: str) -> str:
    message = message.strip()
    return (message[:1].upper() + message[1:]).rstrip(".") + "."
