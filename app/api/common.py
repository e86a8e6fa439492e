"""What several API modules share: the case from the URL, the JSON body, the 409 answer."""

from __future__ import annotations

from flask import abort, jsonify, request

from app.cases import lifecycle
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.extensions import db
from app.inputs import InputError, load_json

#: What a request without a JSON object body is told (modules may add an example).
SEND_JSON_OBJECT = "send a JSON object (Content-Type: application/json)"


def case_or_404(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


def json_body(message: str = SEND_JSON_OBJECT) -> dict:
    """The JSON object sent; 400 with ``message`` when the body is not one, saying why when
    the JSON itself was refused (nested too deep, a NUL or a lone surrogate in a string)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description=message + _refusal())
    return body


def _refusal() -> str:
    if not request.is_json or not request.get_data():
        return ""
    try:
        load_json(request.get_data(), strict_text=True)
    except InputError as exc:
        return f"; the body is {exc}"
    return ""


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
