"""``/api/cases``: the case table and case page as JSON, manual actions (``handle``), the
per-endpoint token-protected ``callback``, and the ``summary`` for dashboards."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import abort, current_app, jsonify, request
from flask_login import current_user

from app.accounts.auth import public, require_role
from app.api import bp
from app.api.common import SEND_JSON_OBJECT, case_or_404, illegal_transition, json_body
from app.cases import callbacks, service
from app.cases.lifecycle import CaseInputError, TransitionError
from app.cases.models import Case
from app.cases.queries import CaseFilters, case_summary, search_cases
from app.extensions import db

T = TypeVar("T")
JSON_EXAMPLE = f'{SEND_JSON_OBJECT}, e.g. {{"action": "close"}}'


def _filters() -> CaseFilters:
    return CaseFilters.from_args(request.args, me=current_user.id)


@bp.get("/cases")
@require_role("viewer")
def list_cases():
    """``{"cases": [case...], "total": int, "page": int, "per_page": int}``.

    Filters as the table: ``status``, ``provider``, ``endpoint`` (id), ``assignee`` (email,
    or ``none``), ``severity``, ``mine=1`` (assigned to the token's user), ``q`` (title
    contains), ``ack`` (yes|no), ``sort`` (urgency (default: unacknowledged live cases first,
    then severity, then age)|updated|oldest|created), ``page`` (1-based), ``size`` (25|50|100).
    """
    filters = _filters()
    per_page = filters.size or current_app.config["CASES_PER_PAGE"]
    cases, total = search_cases(filters, per_page)
    return jsonify(
        cases=[case.to_dict() for case in cases],
        total=total,
        page=filters.page,
        per_page=per_page,
    )


@bp.get("/cases/summary")
@require_role("viewer")
def summary():
    """``{"by_status": {...}, "by_provider": {...}, "by_severity": {...},
    "oldest_open_age_seconds": int|null, "total": int}`` (see ``queries.case_summary``).

    Takes the table's filters except ``status``/``sort``/``page`` (e.g. ``?provider=github``);
    ``by_status`` always has every status. "Open" for the age means live: open, escalated
    or parked.
    """
    return jsonify(case_summary(_filters()))


@bp.get("/cases/<int:case_id>")
@require_role("viewer")
def get_case(case_id: int):
    """One case with its events (oldest first): ``{...case, "events": [event...]}``."""
    case = case_or_404(case_id)
    return jsonify({**case.to_dict(), "events": [event.to_dict() for event in case.events]})


@bp.post("/cases/<int:case_id>/handle")
@require_role("engineer")
def handle(case_id: int):
    """A manual action: ``{"action": "acknowledge"|"close"|"reopen"|"resume"|"assign"|"unassign"|
    "severity"|"tag"|"untag", "user": email|"me", "severity": str, "tags": [str],
    "reason": "manual"|"auto", "note": str}`` (only what the action needs; see
    ``cases.service.handle``).

    ``200 {"case": case, "events": [event written...], "changed": bool}`` (``changed`` is
    false when there was nothing to do, e.g. assigning the current assignee).
    ``400`` bad input; ``409 {"error": "illegal_transition", "detail", "status",
    "allowed": [status...]}`` when the case's status does not allow it.
    """
    case = case_or_404(case_id)
    body = json_body(JSON_EXAMPLE)
    events = _commit(
        case,
        lambda: service.handle(
            case,
            str(body.get("action") or ""),
            actor=current_user,
            user=body.get("user"),
            severity=body.get("severity"),
            tags=body.get("tags"),
            reason=body.get("reason"),
            note=body.get("note"),
        ),
    )
    return jsonify(
        case=case.to_dict(), events=[event.to_dict() for event in events], changed=bool(events)
    )


@bp.post("/cases/<int:case_id>/callback")
@public  # authenticated by the callback token of the case's endpoint, not by a user
def callback(case_id: int):
    """An outside system updates the case: ``Authorization: Bearer <callback token>`` of the
    case's endpoint (``flask endpoints callback-token ENDPOINT_ID``) and ``{"action":
    "close"|"reopen"|"note", "note": str, "reference": str}`` (see
    ``callbacks.apply_callback``). Needs no CSRF token (no session involved).

    ``200 {"case": case, "changed": bool, "outcome": str, "events": [...]}``; ``401`` without
    the right token (a token of another endpoint is the wrong token); ``404`` unknown case;
    ``410`` the endpoint is disabled; ``400`` bad body.
    """
    token = _bearer()
    if token is None:
        return _unauthorized("send Authorization: Bearer <callback token of the case's endpoint>")
    case = case_or_404(case_id)
    endpoint = case.endpoint
    if endpoint is None or not callbacks.token_matches(endpoint, token):
        return _unauthorized(
            "the token is not the callback token of this case's endpoint; an admin prints a "
            "new one with `flask endpoints callback-token ENDPOINT_ID`"
        )
    if not endpoint.enabled:
        abort(410, f"endpoint {endpoint.id} is disabled; its cases take no callbacks")
    body = json_body(JSON_EXAMPLE)
    result = _commit(case, lambda: callbacks.apply_callback(case, body, endpoint=endpoint))
    return jsonify(
        case=case.to_dict(),
        changed=result.changed,
        outcome=result.outcome,
        events=[event.to_dict() for event in result.events],
    )


def _commit(case: Case, change: Callable[[], T]) -> T:
    """``change()`` committed; rolled back and answered 409 (``illegal_transition``) or 400
    when the case refuses it."""
    try:
        result = change()
    except TransitionError as exc:
        db.session.rollback()
        abort(illegal_transition(case, exc))
    except CaseInputError as exc:
        db.session.rollback()
        abort(400, str(exc))
    db.session.commit()
    return result


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(detail: str):
    response = jsonify(error="unauthorized", detail=detail)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="casehook-callback"'
    return response
