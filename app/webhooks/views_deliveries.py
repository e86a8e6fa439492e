"""Console: the deliveries log of an endpoint (filter, page, raw view) and replay.

Everyone signed in reads the log; replaying needs the engineer role (it runs the delivery's
commands again, which may change cases). Refused deliveries cannot be replayed: the log says
why instead of offering the button.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from app.accounts.auth import require_role
from app.extensions import db
from app.webhooks import bp
from app.webhooks.models import Delivery, Endpoint
from app.webhooks.views_support import (
    DELIVERIES_PER_PAGE,
    STATUSES,
    VERDICTS,
    DeliveryFilters,
    ManageError,
    replay,
    replay_plan,
    replay_refusal,
    search_deliveries,
)

#: How many deliveries past the current page the log counts (its pager says "more" beyond).
COUNT_AHEAD = 5000


@bp.get("/endpoints/<endpoint_id>/deliveries")
@require_role("viewer")
def deliveries(endpoint_id: str):
    """The endpoint's deliveries, newest first: ``verdict``, ``status`` and ``page`` filters
    live in the URL (full page, or the ``_deliveries`` fragment to htmx)."""
    endpoint = db.get_or_404(
        Endpoint, endpoint_id, description=f"there is no endpoint {endpoint_id}"
    )
    filters = DeliveryFilters.from_args(request.args, endpoint_id=endpoint.id)
    # Counted up to COUNT_AHEAD past this page, not through the endpoint's whole history.
    count_up_to = (filters.page - 1) * DELIVERIES_PER_PAGE + COUNT_AHEAD
    rows, total = search_deliveries(filters, DELIVERIES_PER_PAGE, count_up_to=count_up_to)
    more = total > count_up_to
    context = {
        "endpoint": endpoint,
        "deliveries": rows,
        "total": min(total, count_up_to),
        "more": more,
        "filters": filters,
        "per_page": DELIVERIES_PER_PAGE,
        "verdicts": VERDICTS,
        "statuses": STATUSES,
        "replay_refusal": replay_refusal,
        "replay_plan": replay_plan,
    }
    template = "webhooks/_deliveries.html" if request.htmx else "webhooks/deliveries.html"
    response = current_app.make_response(render_template(template, **context))
    if request.htmx:
        response.headers["HX-Push-Url"] = url_for(
            "webhooks.deliveries", endpoint_id=endpoint.id, **filters.as_query()
        )
    response.vary.add("HX-Request")
    return response


@bp.post("/deliveries/<delivery_pk>/replay")
@require_role("engineer")
def replay_view(delivery_pk: str):
    """Replay a delivery through the same processing (the button asks first, saying what it
    will do: ``replay_plan``). htmx gets the row of the delivery that will run: the same one
    requeued (it replaces its row) or a new copy (added on top)."""
    original = db.get_or_404(
        Delivery, delivery_pk, description=f"there is no delivery {delivery_pk}"
    )
    try:
        replayed, requeued = replay(original)
    except ManageError as exc:
        abort(exc.status, description=exc.detail)
    if not request.htmx:
        flash(
            f"Delivery {original.delivery_id} "
            + ("queued again." if requeued else f"replayed as {replayed.delivery_id}.")
        )
        return redirect(url_for("webhooks.deliveries", endpoint_id=original.endpoint_id))
    response = current_app.make_response(
        render_template(
            "webhooks/_delivery_row.html",
            delivery=replayed,
            replay_refusal=replay_refusal,
            replay_plan=replay_plan,
            fresh=True,
        )
    )
    if requeued:
        response.headers["HX-Retarget"] = f"#delivery-row-{original.id}"
        response.headers["HX-Reswap"] = "outerHTML"
    else:
        response.headers["HX-Retarget"] = "#delivery-rows"
        response.headers["HX-Reswap"] = "afterbegin"
    return response
