"""Console: the case table (full page or ``_table`` fragment), the case page, and the manual
actions on one case (``_actions``) or on the selected rows of the table (bulk)."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import defer, selectinload

from app.accounts.auth import require_role
from app.cases import bp, lifecycle, service
from app.cases.incident import case_incident
from app.cases.lifecycle import CaseInputError, TransitionError
from app.cases.models import SEVERITIES, Case
from app.cases.panels import panel_context
from app.cases.queries import (
    PAGE_SIZES,
    CaseFilters,
    assignable_users,
    assignee_choices,
    case_version,
    deliveries_of,
    endpoint_choices,
    providers_in_use,
    table_page,
    table_version,
)
from app.cases.timeline import timeline_entries
from app.events.models import CaseEvent
from app.extensions import db
from app.inputs import as_id
from app.webhooks.models import Delivery

#: Sent with every successful case action, so other panels refresh themselves (panels marked
#: ``data-case-panel="<source>"``, see static/console.js); ``source`` skips the sender.
CASE_CHANGED = json.dumps({"case-changed": {"source": "cases"}})


@bp.get("/")
@require_role("viewer")
def home():
    return redirect(url_for("cases.index"))


def _filters(args) -> CaseFilters:
    return CaseFilters.from_args(args, me=current_user.id)


def _table_context(filters: CaseFilters, version: str | None = None) -> dict:
    cases, total, counts = table_page(filters, current_app.config["CASES_PER_PAGE"])
    return {
        "cases": cases,
        "total": total,
        "filters": filters,
        "counts": counts,
        "version": version or table_version(),
        "per_page": filters.size or current_app.config["CASES_PER_PAGE"],
        "poll_seconds": current_app.config["POLL_SECONDS"],
        "can_work": current_user.has_role("engineer"),
    }


@bp.get("/cases")
@require_role("viewer")
def index():
    """The case table.

    Live updates are polling, not SSE: an open SSE stream would hold one of gunicorn's sync
    workers for its whole life. The table polls every ``POLL_SECONDS`` with the version it
    shows (``since``); nothing changed → ``204`` (htmx swaps nothing), else the fragment.
    The poll pauses while rows are ticked for a bulk action (``_table.html``).
    """
    version = table_version()
    if request.htmx and request.args.get("since") == version:
        response = current_app.response_class(status=204)
    else:
        filters = _filters(request.args)
        context = _table_context(filters, version)
        if request.htmx:
            response = current_app.make_response(render_template("cases/_table.html", **context))
            if "since" not in request.args:
                # Filters changed: put the canonical URL (no empty fields) in the address bar.
                response.headers["HX-Push-Url"] = filters.url()
        else:
            assignable = assignable_users()
            response = current_app.make_response(
                render_template(
                    "cases/index.html",
                    providers=providers_in_use(),
                    endpoints=endpoint_choices(),
                    assignees=assignee_choices(assignable),
                    assignable=assignable,
                    severities=SEVERITIES,
                    # The configured default is among the choices, sent as "" (not in the URL).
                    page_sizes=sorted({current_app.config["CASES_PER_PAGE"], *PAGE_SIZES}),
                    default_size=current_app.config["CASES_PER_PAGE"],
                    **context,
                )
            )
    response.vary.add("HX-Request")
    return response


@bp.get("/cases/<int:case_id>")
@require_role("viewer")
def show(case_id: int):
    """The case page: the incident first (header, what the source said), the actions as a
    toolbar, the panels, then the timeline (newest first) and the deliveries.

    Live by versioned polling, like the table: the page asks every ``POLL_SECONDS`` with the
    version it shows (``since``, htmx); unchanged → ``204`` after one cheap statement
    (``case_version``), else the page's content without the layout, from which
    static/console.js swaps the regions that changed and nobody is typing in.
    """
    version = case_version(case_id)
    if version is None:
        abort(404, description=f"there is no case {case_id}")
    # Only the poll (htmx with ``since``; "" asks for the content anyway) gets the bare
    # content: another htmx request that lands here (a redirect) still gets the page.
    poll = bool(request.htmx) and "since" in request.args
    if poll and request.args["since"] == version:
        response = current_app.response_class(status=204)
    else:
        case = _case_with_timeline(case_id, event_deliveries=False)
        # Every event's delivery is among these: held here, ``event.delivery`` is then
        # found in the session (a many-to-one by primary key), not loaded a second time.
        deliveries = db.session.scalars(
            deliveries_of(case)
            .order_by(Delivery.received_at.desc())
            .options(defer(Delivery.body), defer(Delivery.headers))
        ).all()
        response = current_app.make_response(
            render_template(
                "cases/show.html",
                deliveries=deliveries,
                incident=case_incident(case),
                live_version=version,
                live_fragment=poll,
                poll_seconds=current_app.config["POLL_SECONDS"],
                **_actions_context(case),
                **panel_context(case),
            )
        )
    response.vary.add("HX-Request")
    return response


def _case_with_timeline(case_id: int, *, event_deliveries: bool = True) -> Case:
    """The case with its events and (``event_deliveries``) their deliveries loaded in two
    more queries (not one per event), without the deliveries' bodies, which the timeline
    does not show; 404."""
    events = selectinload(Case.events)
    if event_deliveries:
        events = events.selectinload(CaseEvent.delivery).options(
            defer(Delivery.body), defer(Delivery.headers)
        )
    case = db.session.get(Case, case_id, options=[events])
    if case is None:
        abort(404, description=f"there is no case {case_id}")
    return case


def _actions_context(case: Case, **extra: Any) -> dict:
    return {
        "case": case,
        "can_work": current_user.has_role("engineer"),
        "assignable": assignable_users(),
        "severities": SEVERITIES,
        "allowed_next": lifecycle.allowed_from(case.status),
        **extra,
    }


@bp.get("/cases/<int:case_id>/actions")
@require_role("viewer")
def actions(case_id: int):
    """The ``_actions`` fragment with the header and the timeline out of band: what the
    actions panel reloads when another feature announces ``case-changed`` (a park, a
    resolve), so that the status, the allowed actions and the timeline stay true."""
    case = _case_with_timeline(case_id)
    return render_template("cases/_case_update.html", **_actions_context(case))


@bp.post("/cases/<int:case_id>/handle")
@require_role("engineer")
def handle(case_id: int):
    """One manual action from the case page (form fields as ``service.handle``: ``action``,
    ``user``, ``severity``, ``tags``, ``note``; close reason is always ``manual`` here).

    htmx: answers the ``_actions`` fragment plus the header and the timeline out of band;
    a refused action answers ``422`` with the reason in the fragment (htmx swaps 422).
    Without JavaScript: a redirect back to the case page with the outcome flashed.
    """
    case = db.get_or_404(Case, case_id, description=f"there is no case {case_id}")
    action = request.form.get("action", "")
    error = done = None
    try:
        events = service.handle(
            case,
            action,
            actor=current_user,
            user=request.form.get("user"),
            severity=request.form.get("severity"),
            tags=request.form.get("tags"),
            reason="manual",
            note=request.form.get("note") or None,
        )
    except (TransitionError, CaseInputError) as exc:
        db.session.rollback()
        error = _sentence(str(exc))
    else:
        db.session.commit()
        done = _done_message(action, case, changed=bool(events))
    if not request.htmx:
        flash(error or done, "error" if error else "success")
        return redirect(url_for("cases.show", case_id=case_id), code=303)
    case = db.session.get(Case, case_id)
    # The toolbar's disclosure the action came from stays open (More… after a severity
    # change; Close… when the close was refused), so the next step is where it was.
    from_more = action in MORE_ACTIONS and request.form.get("user") != "me"
    tool = "more" if from_more else (action if error else None)
    response = current_app.make_response(
        render_template(
            "cases/_case_update.html",
            **_actions_context(case, action_error=error, done=done, open_tool=tool),
        )
    )
    if error:
        response.status_code = 422
    else:
        response.headers["HX-Trigger"] = CASE_CHANGED
    return response


#: Actions under the toolbar's More… disclosure (templates/cases/_actions.html).
MORE_ACTIONS = ("assign", "unassign", "severity", "tag", "untag")

BULK_ACTIONS = {
    "acknowledge": ("acknowledge", {}),
    "assign_me": ("assign", {"user": "me"}),
    "assign": ("assign", {}),
    "unassign": ("unassign", {}),
    "close": ("close", {"reason": "manual"}),
    "tag": ("tag", {}),
}


@bp.post("/cases/bulk")
@require_role("engineer")
def bulk():
    """A bulk action on the ticked rows (``case_id``, repeated): ``action`` is acknowledge,
    assign_me, assign (with ``user``), unassign, close or tag (with ``tags``).

    Answers the refreshed ``_table`` fragment for the filters sent along (the filter form is
    included), with a notice of what changed and what was refused; a bad request (nothing
    ticked, unknown user, ...) answers ``422`` with the same fragment and the reason.
    Without JavaScript: a redirect back to the table with the outcome flashed.
    """
    filters = _filters(request.form)
    ids = [case_id for v in request.form.getlist("case_id") if (case_id := as_id(v))]
    action, options = BULK_ACTIONS.get(request.form.get("action", ""), ("", {}))
    options = {"user": request.form.get("user"), "tags": request.form.get("tags"), **options}
    notice, error = None, None
    try:
        if not action:
            raise CaseInputError("choose what to do with the selected cases")
        result = service.handle_many(ids, action, actor=current_user, **options)
    except CaseInputError as exc:
        db.session.rollback()
        error = _sentence(str(exc))
    else:
        db.session.commit()
        notice = _bulk_message(action, result)
    if not request.htmx:
        flash(error or notice, "error" if error else "success")
        return redirect(filters.url(), code=303)
    response = current_app.make_response(
        render_template(
            "cases/_table.html", bulk_notice=notice, bulk_error=error, **_table_context(filters)
        )
    )
    if error:
        response.status_code = 422
    response.vary.add("HX-Request")
    return response


def _sentence(message: str) -> str:
    """A domain message as a sentence; "a closed case..." → "A closed case...". A message
    that starts with a name (an email, a tag) keeps it as it is."""
    message = message.strip().rstrip(".")
    first = message.split(" ", 1)[0]
    if first.isalpha():
        message = message[:1].upper() + message[1:]
    return message + "."


_DONE = {
    "acknowledge": "Acknowledged.",
    "close": "Closed the case.",
    "reopen": "Reopened the case.",
    "resume": "The case is open again.",
    "assign": "Assigned to {assignee}.",
    "unassign": "Unassigned the case.",
    "severity": "Severity is now {severity}.",
    "tag": "Tags updated.",
    "untag": "Tags updated.",
}


def _done_message(action: str, case: Case, *, changed: bool) -> str:
    if not changed:
        return "Nothing to change."
    assignee = case.assignee.email if case.assignee else "nobody"
    return _DONE.get(action, "Done.").format(assignee=assignee, severity=case.severity)


def _bulk_message(action: str, result: dict) -> str:
    verbs = {
        "acknowledge": "Acknowledged",
        "assign": "Assigned",
        "unassign": "Unassigned",
        "close": "Closed",
        "tag": "Tagged",
    }
    changed = len(result["changed"])
    parts = [f"{verbs[action]} {changed} case{'s' if changed != 1 else ''}."]
    if result["unchanged"]:
        ids = ", ".join(f"#{i}" for i in result["unchanged"])
        parts.append(f"Already so: {ids}.")
    for case_id, reason in result["refused"].items():
        parts.append(f"#{case_id} refused: {_sentence(reason)}")
    if result["missing"]:
        parts.append("Gone: " + ", ".join(f"#{i}" for i in result["missing"]) + ".")
    return " ".join(parts)


# The timeline partial is rendered by other features too (handoffs, outputs), with the case only.
bp.add_app_template_global(timeline_entries, "timeline_entries")
