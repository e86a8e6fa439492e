"""``/api/cases``: the case table and case page as JSON, manual actions (``handle``), the
per-endpoint token-protected ``callback``, and the ``summary`` for dashboards."""

from __future__ import annotations

from flask import current_app, request
from flask_login import current_user

from app.accounts.auth import public, require_role
from app.api import bp
from app.api.common import case_or_404
from app.api.schemas import next_offset, offset_of
from app.api.schemas.cases import (
    CallbackBody,
    CallbackResult,
    Case,
    CaseDetail,
    CaseFilterQuery,
    CaseList,
    CaseListQuery,
    CaseSummary,
    HandleBody,
    Handled,
)
from app.api.schemas.events import Event
from app.api.spec import operation, parse_body
from app.cases import callbacks, service
from app.cases.queries import CaseFilters, case_summary, search_cases
from app.errors import DomainError
from app.extensions import db


def _filters(query: CaseFilterQuery) -> CaseFilters:
    args = query.model_dump(exclude_none=True, exclude={"page", "size", "limit", "after"})
    args["mine"] = "1" if args.get("mine") else ""
    return CaseFilters.from_args(args, me=current_user.id)


@bp.get("/cases")
@require_role("viewer")
@operation(query=CaseListQuery, responses={200: CaseList}, tag="cases")
def list_cases(query: CaseListQuery) -> CaseList:
    """The case table: cases matching the filters, most urgent first.

    Filters as the table: ``status``, ``provider``, ``endpoint`` (id), ``assignee`` (email,
    or ``none``), ``severity``, ``mine=1`` (assigned to the token's user), ``q`` (title
    contains), ``ack`` (yes|no), ``sort`` (urgency (default: unacknowledged live cases first,
    then severity, then age)|updated|oldest|created). Paged by ``limit`` (default
    ``CASES_PER_PAGE``, at most 100) and ``after`` (the previous answer's ``next_after``);
    ``page`` (1-based) and ``size`` still work.
    """
    per_page = query.limit or query.size or current_app.config["CASES_PER_PAGE"]
    page = query.page or 1
    offset = offset_of(query.after) if query.after else (page - 1) * per_page
    cases, total = search_cases(_filters(query), per_page, offset)
    return CaseList(
        cases=[Case.of(case) for case in cases],
        total=total,
        page=offset // per_page + 1,
        per_page=per_page,
        next_after=next_offset(offset, len(cases), total),
    )


@bp.get("/cases/summary")
@require_role("viewer")
@operation(query=CaseFilterQuery, responses={200: CaseSummary}, tag="cases")
def summary(query: CaseFilterQuery) -> CaseSummary:
    """Counts for dashboards, under the table's filters (``status``, ``sort`` and paging
    aside).

    ``by_status`` always has every status. "Open" for the age means live: open, escalated
    or parked.
    """
    return CaseSummary.model_validate(case_summary(_filters(query)))


@bp.get("/cases/<int:case_id>")
@require_role("viewer")
@operation(responses={200: CaseDetail}, tag="cases")
def get_case(case_id: int) -> CaseDetail:
    """One case with its events (oldest first)."""
    case = case_or_404(case_id)
    return CaseDetail.model_validate(
        {**case.to_dict(), "events": [event.to_dict() for event in case.events]}
    )


@bp.post("/cases/<int:case_id>/handle")
@require_role("engineer")
@operation(body=HandleBody, responses={200: Handled}, tag="cases")
def handle(case_id: int, body: HandleBody) -> Handled:
    """A manual action on a case (see ``cases.service.handle``).

    ``changed`` is false when there was nothing to do (e.g. assigning the current
    assignee). 409 ``illegal_transition`` (with the case's ``status`` and the ``allowed``
    statuses) when the case's status does not allow it.
    """
    case = case_or_404(case_id)
    events = service.handle(
        case,
        body.action,
        actor=current_user,
        user=body.user,
        severity=body.severity,
        tags=body.tags,
        reason=body.reason,
        note=body.note,
    )
    db.session.commit()
    return Handled(
        case=Case.of(case), events=[Event.of(event) for event in events], changed=bool(events)
    )


@bp.post("/cases/<int:case_id>/callback")
@public  # authenticated by the callback token of the case's endpoint, not by a user
@operation(body=CallbackBody, responses={200: CallbackResult}, tag="cases", parse_body_first=False)
def callback(case_id: int) -> CallbackResult:
    """An outside system updates the case (``Authorization: Bearer <callback token>``).

    The token is the callback token of the case's endpoint (``flask endpoints
    callback-token ENDPOINT_ID``); no CSRF token (no session involved). See
    ``callbacks.apply_callback``. 401 without the right token (a token of another
    endpoint is the wrong token); 404 unknown case; 410 the endpoint is disabled.
    """
    token = _bearer()
    if token is None:
        raise _unauthorized("send Authorization: Bearer <callback token of the case's endpoint>")
    case = case_or_404(case_id)
    endpoint = case.endpoint
    if endpoint is None or not callbacks.token_matches(endpoint, token):
        raise _unauthorized(
            "the token is not the callback token of this case's endpoint; an admin prints a "
            "new one with `flask endpoints callback-token ENDPOINT_ID`"
        )
    if not endpoint.enabled:
        raise DomainError(
            f"endpoint {endpoint.id} is disabled; its cases take no callbacks",
            status=410,
            error="gone",
        )
    body = parse_body(CallbackBody)
    result = callbacks.apply_callback(case, body.model_dump(exclude_none=True), endpoint=endpoint)
    db.session.commit()
    return CallbackResult(
        case=Case.of(case),
        changed=result.changed,
        outcome=result.outcome,
        events=[Event.of(event) for event in result.events],
    )


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(detail: str) -> DomainError:
    return DomainError(
        detail,
        status=401,
        error="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="casehook-callback"'},
    )
