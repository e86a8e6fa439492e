"""Console: the case table (full page or ``_table`` fragment) and the case page."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for

from app.accounts.auth import require_role
from app.cases import bp
from app.cases.models import Case
from app.cases.panels import panel_context
from app.cases.queries import (
    CaseFilters,
    providers_in_use,
    search_cases,
    status_counts,
    table_version,
)
from app.extensions import db
from app.webhooks.models import Delivery


@bp.get("/")
@require_role("viewer")
def home():
    return redirect(url_for("cases.index"))


@bp.get("/cases")
@require_role("viewer")
def index():
    """The case table.

    Live updates are polling, not SSE: an open SSE stream would hold one of gunicorn's sync
    workers for its whole life. The table polls every ``POLL_SECONDS`` with the version it
    shows (``since``); nothing changed → ``204`` (htmx swaps nothing), else the fragment.
    """
    version = table_version()
    if request.htmx and request.args.get("since") == version:
        response = current_app.response_class(status=204)
    else:
        filters = CaseFilters.from_args(request.args)
        cases, total = search_cases(filters, current_app.config["CASES_PER_PAGE"])
        context = {
            "cases": cases,
            "total": total,
            "filters": filters,
            "counts": status_counts(filters),
            "version": version,
            "per_page": current_app.config["CASES_PER_PAGE"],
            "poll_seconds": current_app.config["POLL_SECONDS"],
        }
        if request.htmx:
            response = current_app.make_response(render_template("cases/_table.html", **context))
            if "since" not in request.args:
                # Filters changed: put the canonical URL (no empty fields) in the address bar.
                response.headers["HX-Push-Url"] = url_for("cases.index", **filters.as_query())
        else:
            response = current_app.make_response(
                render_template("cases/index.html", providers=providers_in_use(), **context)
            )
    response.vary.add("HX-Request")
    return response


@bp.get("/cases/<int:case_id>")
@require_role("viewer")
def show(case_id: int):
    """The case page: header, the timeline of case events, and the deliveries behind them."""
    case = db.get_or_404(Case, case_id, description=f"there is no case {case_id}")
    deliveries = db.session.scalars(
        db.select(Delivery).where(Delivery.case_id == case.id).order_by(Delivery.received_at)
    ).all()
    return render_template(
        "cases/show.html", case=case, deliveries=deliveries, **panel_context(case)
    )
