"""``/api/.../handoffs`` and ``/api/queue``: park, escalate and claim cases (SPEC C5).

Errors are ``{"error", "detail"}``: 400 for a bad value, 404 for an unknown case or handoff,
409 when the case's status does not allow it (``illegal_transition``, with ``allowed``), the
case already has a handoff waiting (``handoff_pending``, with ``handoff_id``), or the handoff
was claimed already (``already_claimed``, with ``claimed_by``) or no longer waits
(``handoff_not_waiting``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, jsonify, request, url_for
from flask_login import current_user

from app.accounts.auth import require_role
from app.accounts.models import User
from app.api import bp
from app.api.common import case_or_404, json_body
from app.cases import lifecycle
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.extensions import db
from app.handoffs import service
from app.handoffs.models import INTENTS, Handoff
from app.handoffs.service import HandoffConflict, HandoffInputError
from app.inputs import as_id

FIELDS = ("intent", "notes", "priority", "waiting_on", "resume_at", "to_user", "next_step")


def _with_case(handoff: Handoff) -> dict:
    case = handoff.case
    return {
        **handoff.to_dict(),
        "case": {
            "id": case.id,
            "title": case.title,
            "status": case.status,
            "severity": case.severity,
            "assignee": case.to_dict()["assignee"],
        },
    }


def _conflict(exc: Exception, case: Case | None = None):
    """409 ``{"error", "detail", ...}`` for a ``HandoffConflict`` or ``TransitionError``."""
    if isinstance(exc, HandoffConflict):
        body: dict[str, Any] = {"error": exc.code, "detail": str(exc)}
        if exc.handoff is not None:
            body["handoff_id"] = exc.handoff.id
            if exc.code == "already_claimed":
                body["claimed_by"] = (
                    exc.handoff.claimed_by.email if exc.handoff.claimed_by else None
                )
    else:
        body = {"error": "illegal_transition", "detail": str(exc)}
        if case is not None:
            body["allowed"] = list(lifecycle.allowed_from(case.status))
    return jsonify(body), 409


@bp.post("/cases/<int:case_id>/handoffs")
@require_role("engineer")
def create_handoff(case_id: int):
    """Park or escalate. Body: ``{"intent": "park"|"escalate", "notes": str, "priority":
    "normal"|"elevated" (default normal), "waiting_on"?: str, "resume_at"?: ISO 8601 (UTC
    when no offset; park), "to_user"?: email or user id (escalate), "next_step"?: str}``.

    201 with the handoff (``Location`` names it); the case is parked/escalated.
    """
    case = case_or_404(case_id)
    body = json_body(
        'send a JSON object: {"intent": "park"|"escalate", '
        '"notes": "...", "priority": "normal"|"elevated"}'
    )
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        abort(400, description=f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    try:
        handoff = service.create_handoff(
            case,
            body.get("intent"),
            body.get("notes"),
            body.get("priority") or "normal",
            current_user._get_current_object(),
            waiting_on=body.get("waiting_on"),
            resume_at=_moment(body.get("resume_at")),
            to_user=_user(body.get("to_user")),
            next_step=body.get("next_step"),
        )
    except HandoffInputError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    except (TransitionError, HandoffConflict) as exc:
        db.session.rollback()
        return _conflict(exc, case)
    db.session.commit()
    response = jsonify(_with_case(handoff))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_handoff", handoff_id=handoff.id)
    return response


@bp.get("/cases/<int:case_id>/handoffs")
@require_role("viewer")
def list_handoffs(case_id: int):
    """``{"handoffs": [handoff...], "pending_id": int|None}``, oldest first."""
    case = case_or_404(case_id)
    pending = service.pending_handoff(case)
    return jsonify(
        handoffs=[h.to_dict() for h in service.handoffs_of(case)],
        pending_id=pending.id if pending is not None else None,
    )


@bp.get("/handoffs/<int:handoff_id>")
@require_role("viewer")
def get_handoff(handoff_id: int):
    """One handoff with a short view of its case."""
    return jsonify(_with_case(_handoff(handoff_id)))


@bp.get("/queue")
@require_role("viewer")
def handoff_queue():
    """``{"queue": [handoff + "case"...]}``: waiting handoffs, elevated first then oldest;
    ``?intent=park|escalate`` filters."""
    intent = request.args.get("intent") or None
    if intent is not None and intent not in INTENTS:
        abort(400, description=f"intent must be one of {', '.join(INTENTS)}, not {intent!r}")
    return jsonify(queue=[_with_case(h) for h in service.queue(intent)])


@bp.post("/handoffs/<int:handoff_id>/claim")
@require_role("engineer")
def claim_handoff(handoff_id: int):
    """Claim: 200 with the handoff (``briefing`` filled in) and its case, now open and
    assigned to you."""
    handoff = _handoff(handoff_id)
    try:
        service.claim(handoff, current_user._get_current_object())
    except HandoffConflict as exc:
        db.session.rollback()
        return _conflict(exc)
    db.session.commit()
    return jsonify(_with_case(handoff))


def _handoff(handoff_id: int) -> Handoff:
    return db.get_or_404(Handoff, handoff_id, description=f"there is no handoff {handoff_id}")


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        abort(400, description="resume_at must be an ISO 8601 date and time string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        abort(
            400,
            description=f"resume_at {value!r} is not an ISO 8601 date and time, "
            "e.g. 2026-11-21T09:00:00Z",
        )


def _user(value: Any) -> User | None:
    """``to_user`` by email or id; 400 when nobody matches."""
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        abort(400, description="to_user must be a user's email or id")
    if isinstance(value, int) or value.isdigit():
        user_id = as_id(value)  # "²" is a digit too, and ids end at MAX_ID
        user = db.session.get(User, user_id) if user_id else None
    else:
        user = db.session.scalars(
            db.select(User).where(User.email == value.strip().lower())
        ).first()
    if user is None:
        abort(400, description=f"to_user {value!r} is not a user; give an engineer's email or id")
    return user
