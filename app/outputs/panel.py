"""What the outputs panel (``templates/outputs/_panel.html``) on the case page is drawn from."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_login import current_user

from app.cases.lifecycle import allowed_from
from app.cases.models import Case
from app.cases.panels import register_panel
from app.inputs import id_arg
from app.outputs import service
from app.outputs.jobs import writing_state
from app.writing import KINDS

#: How often the panel asks whether the outputs are written (milliseconds).
POLL_MS = 1500


def panel_context(
    case: Case,
    *,
    tab: str | None = None,
    editing: int | None = None,
    error: str | None = None,
    draft: str | None = None,
    notice: str | None = None,
    polled: bool = False,
) -> dict:
    """The panel's template context (keys prefixed ``resolution_``).

    ``tab``: the kind shown (default the first written). ``editing``: the id of the output
    whose editor is open, with ``draft`` (the text being edited) and ``error``. ``polled``:
    the request is the panel's own poll, so a finished write also refreshes the timeline.
    """
    outputs = service.outputs_of(case)
    newest = max((o.generated_at for o in outputs), default=None)
    state = writing_state(case.id, since=newest)
    kinds = [o.kind for o in outputs]
    if tab not in kinds:
        tab = kinds[0] if kinds else None
    return {
        "resolution_outputs": outputs,
        "resolution_state": state["state"],
        "resolution_state_detail": state["detail"],
        "resolution_tab": tab,
        "resolution_current": next((o for o in outputs if o.kind == tab), None),
        # Where approved outputs can be pushed (read only when one is approved).
        "resolution_push_targets": service.push_targets(case)
        if any(o.status in ("approved", "pushed") for o in outputs)
        else [],
        "resolution_editing": editing,
        "resolution_error": error,
        "resolution_draft": draft,
        "resolution_notice": notice,
        "resolution_can_work": current_user.is_authenticated and current_user.has_role("engineer"),
        "resolution_can_resolve": "resolved" in allowed_from(case.status),
        "resolution_summary_limit": service.SUMMARY_LIMIT,
        "resolution_poll_ms": current_app.config.get("OUTPUTS_POLL_MS", POLL_MS),
        "resolution_refresh_timeline": polled and state["state"] != "pending",
    }


@register_panel
def provide(case: Case) -> dict[str, Any]:
    """The case page's share: ``?output=<kind>`` picks the tab, ``&edit=<output id>`` opens
    its editor (engineers; so editing works without JavaScript too)."""
    tab = request.args.get("output")
    editing = request.args.get("edit", type=id_arg)
    if not (current_user.is_authenticated and current_user.has_role("engineer")):
        editing = None
    return panel_context(case, tab=tab if tab in KINDS else None, editing=editing)
