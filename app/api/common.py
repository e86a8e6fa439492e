"""What several API modules share: the case from the URL, the JSON body, the 409 answer."""

from __future__ import annotations

from flask import abort, jsonify, request

from app.cases import lifecycle
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.extensions import db

#: What a request without a JSON object body is told (modules may add an example).
SEND_JSON_OBJECT = "send a JSON object (Content-Type: application/json)"


def case_or_404(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


def json_body(message: str = SEND_JSON_OBJECT) -> dict:
    """The JSON object sent; 400 with ``message`` when the body is not one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description=message)
    return body


def illegal_transition(case: Case, exc: TransitionError):
    """409 ``{"error": "illegal_transition", "detail", "status", "allowed"}``: the statuses
    allowed from the case's status."""
    response = jsonify(
        error="illegal_transition",
        detail=str(exc),
        status=case.status,
        allowed=list(lifecycle.allowed_from(case.status)),
    )
    response.status_code = 409
    return response
