"""What the branch map partial (``templates/branches/_map.html``) is drawn from."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from app.branches import bp, service
from app.branches.models import BADGE_LABELS, Branch
from app.cases.lifecycle import allowed_from
from app.cases.models import Case
from app.cases.panels import register_panel
from app.inputs import id_arg


def prepare(case: Case) -> Branch:
    """The active branch of ``case``. Every case has its root from the moment it opens (a
    ``case.opened`` subscriber; migration 0011 gave older cases theirs), so this only reads;
    a case made some other way gets a root in this session, never committed by a read."""
    return service.active_branch(case)


def map_context(
    case: Case,
    focus_id: int | None = None,
    *,
    errors: dict[str, str] | None = None,
    values: MultiDict | None = None,
) -> dict[str, Any]:
    """The partial's data: ``{"branch_map": {...}}``.

    ``focus_id`` is the branch whose notes and forms are shown (default: the active one);
    ``errors`` maps a form (``fork``, ``status``, ``revive``, ``note``, ``switch``) to the
    refusal to show in it, ``values`` what was typed, to show again.
    """
    active = prepare(case)
    focus = service.get_branch(case, focus_id) if focus_id else None
    focus = focus or active
    branches = service.branches_of(case)
    limit = service.branch_limit()
    engineer = bool(current_user.is_authenticated and current_user.has_role("engineer"))
    workable = case.status not in ("resolved", "closed")
    solved = next((b for b in branches if b.status == "solved"), None)
    fork_room = min(limit - len(branches), service.FORK_MAX - len(focus.children))
    return {
        "branch_map": {
            "case": case,
            "tree": service.map_tree(case, branches),
            "branches": branches,
            "active": active,
            "focus": focus,
            "siblings": service.sibling_summaries(focus),
            "count": len(branches),
            "limit": limit,
            "fork_room": fork_room,
            "fork_max": service.FORK_MAX,
            "can_work": engineer and workable,
            "read_only_reason": None
            if engineer and workable
            else (
                f"The case is {case.status}: reopen it to work on its branches."
                if not workable
                else "You can read the branch map; working it needs the engineer role."
            ),
            "solved": solved,
            "offer_resolve": solved is not None and "resolved" in allowed_from(case.status),
            "badges": BADGE_LABELS,
            "errors": errors or {},
            "typed_in": values if values is not None else MultiDict(),
            "max_upload_bytes": service.attachment_max_bytes(),
        }
    }


@register_panel
def provide(case: Case) -> dict[str, Any]:
    """The case page's branch panel (``?branch=<id>`` shows that branch's notes)."""
    return map_context(case, request.args.get("branch", type=id_arg))


@bp.app_template_filter("attachment_size")
def _attachment_size(size: int) -> str:
    """Bytes for people: "512 bytes", "14 KiB", "2.5 MiB"."""
    return service.human_size(size)
