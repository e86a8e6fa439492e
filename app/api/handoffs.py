"""``/api/.../handoffs`` and ``/api/queue``: park, escalate and claim cases (SPEC C5).

Refusals are ``{"error", "detail", "field"?}``: 400 for a bad value, 404 for an unknown case
or handoff, 409 when the case's status does not allow it (``illegal_transition``, with
``status`` and ``allowed``), the case already has a handoff waiting (``handoff_pending``, with
``handoff_id``), or the handoff was claimed already (``already_claimed``, with
``handoff_id`` and ``claimed_by``) or no longer waits (``handoff_not_waiting``).
"""

from __future__ import annotations

from flask import Response, after_this_request, url_for
from flask_login import current_user

from app.accounts.auth import require_role
from app.accounts.models import User
from app.api import bp
from app.api.common import case_or_404
from app.api.schemas.handoffs import (
    Handoff,
    HandoffBody,
    HandoffList,
    HandoffWithCase,
    Queue,
    QueueQuery,
)
from app.api.spec import InvalidInput, operation
from app.extensions import db
from app.handoffs import service
from app.handoffs.models import Handoff as HandoffRow
from app.inputs import as_id


@bp.post("/cases/<int:case_id>/handoffs")
@require_role("engineer")
@operation(body=HandoffBody, responses={201: HandoffWithCase}, tag="handoffs")
def create_handoff(case_id: int, body: HandoffBody) -> tuple[HandoffWithCase, int]:
    """Park or escalate the case: 201 with the handoff (``Location`` names it).

    ``waiting_on`` and ``resume_at`` (in the future) apply to parking, ``to_user`` to
    escalations.
    """
    case = case_or_404(case_id)
    handoff = service.create_handoff(
        case,
        body.intent,
        body.notes,
        body.priority,
        current_user._get_current_object(),
        waiting_on=body.waiting_on,
        resume_at=body.resume_at,
        to_user=_user(body.to_user),
        next_step=body.next_step,
    )
    db.session.commit()
    location = url_for("api.get_handoff", handoff_id=handoff.id)

    @after_this_request
    def _locate(response: Response) -> Response:
        response.headers["Location"] = location
        return response

    return HandoffWithCase.of(handoff), 201


@bp.get("/cases/<int:case_id>/handoffs")
@require_role("viewer")
@operation(responses={200: HandoffList}, tag="handoffs")
def list_handoffs(case_id: int) -> HandoffList:
    """The case's handoffs, oldest first, and the one waiting (``pending_id``)."""
    case = case_or_404(case_id)
    pending = service.pending_handoff(case)
    return HandoffList(
        handoffs=[Handoff.of(h) for h in service.handoffs_of(case)],
        pending_id=pending.id if pending is not None else None,
    )


@bp.get("/handoffs/<int:handoff_id>")
@require_role("viewer")
@operation(responses={200: HandoffWithCase}, tag="handoffs")
def get_handoff(handoff_id: int) -> HandoffWithCase:
    """One handoff with a short view of its case."""
    return HandoffWithCase.of(_handoff(handoff_id))


@bp.get("/queue")
@require_role("viewer")
@operation(query=QueueQuery, responses={200: Queue}, tag="handoffs")
def handoff_queue(query: QueueQuery) -> Queue:
    """Waiting handoffs, elevated first then oldest."""
    return Queue(queue=[HandoffWithCase.of(h) for h in service.queue(query.intent or None)])


@bp.post("/handoffs/<int:handoff_id>/claim")
@require_role("engineer")
@operation(responses={200: HandoffWithCase}, tag="handoffs")
def claim_handoff(handoff_id: int) -> HandoffWithCase:
    """Claim: the handoff (``briefing`` to follow) and its case, now open and assigned to
    you."""
    handoff = _handoff(handoff_id)
    service.claim(handoff, current_user._get_current_object())
    db.session.commit()
    return HandoffWithCase.of(handoff)


def _handoff(handoff_id: int) -> HandoffRow:
    return db.get_or_404(HandoffRow, handoff_id, description=f"there is no handoff {handoff_id}")


def _user(value: str | int | None) -> User | None:
    """``to_user`` by email or id; 400 when nobody matches."""
    if value is None:
        return None
    if isinstance(value, int) or value.isdigit():
        user_id = as_id(value)  # "²" is a digit too, and ids end at MAX_ID
        user = db.session.get(User, user_id) if user_id else None
    else:
        user = db.session.scalars(
            db.select(User).where(User.email == value.strip().lower())
        ).first()
    if user is None:
        raise InvalidInput(
            f"to_user {value!r} is not a user; give an engineer's email or id", field="to_user"
        )
    return user
