"""``/api/cases``: the case table and case page as JSON."""

from __future__ import annotations

from flask import current_app, jsonify, request

from app.accounts.auth import require_role
from app.api import bp
from app.cases.models import Case
from app.cases.queries import CaseFilters, search_cases
from app.extensions import db


@bp.get("/cases")
@require_role("viewer")
def list_cases():
    """``{"cases": [case...], "total": int, "page": int, "per_page": int}``.

    Filters as the table: ``status``, ``provider``, ``q`` (title contains), ``sort``
    (updated|oldest|created), ``page`` (1-based).
    """
    filters = CaseFilters.from_args(request.args)
    per_page = current_app.config["CASES_PER_PAGE"]
    cases, total = search_cases(filters, per_page)
    return jsonify(
        cases=[case.to_dict() for case in cases],
        total=total,
        page=filters.page,
        per_page=per_page,
    )


@bp.get("/cases/<int:case_id>")
@require_role("viewer")
def get_case(case_id: int):
    """One case with its events (oldest first): ``{...case, "events": [event...]}``."""
    case = db.get_or_404(Case, case_id, description=f"there is no case {case_id}")
    return jsonify({**case.to_dict(), "events": [event.to_dict() for event in case.events]})
