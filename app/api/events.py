"""``/api/events``: the case-event stream, and the JSON Schemas its events follow."""

from __future__ import annotations

from flask import abort, jsonify, request

from app.accounts.auth import require_role
from app.api import bp
from app.events import schemas, stream
from app.inputs import bounded_int


@bp.get("/events")
@require_role("viewer")
def list_events():
    """``{"events": [event...], "next_after": id | null}``: events after the event ``after``
    (absent: from the start) in storage order, at most ``limit`` (1-1000, default 100),
    only of types matching ``type`` (``case.*``) and of case ``case_id`` when given.

    Follow ``next_after`` to read on; null means nothing more yet (keep your ``after``).
    No event committed later can appear before one you have read. 400 for an ``after``
    that names no event or a bad number.
    """
    args = request.args
    limit = bounded_int(args.get("limit", "100"), "limit", 1, stream.MAX_LIMIT)
    case_id = bounded_int(args["case_id"], "case_id") if args.get("case_id") else None
    after = args.get("after") or None
    if after is not None and len(after) > 64:
        abort(400, description="after must be an event id")
    type_pattern = (args.get("type") or "").strip()[:100] or None
    try:
        body = stream.page(after, limit, type_pattern=type_pattern, case_id=case_id)
    except stream.UnknownCursor:
        abort(400, description=f"after names no event: {after!r}")
    return jsonify(body)


@bp.get("/events/schemas")
@require_role("viewer")
def event_schemas():
    """``{"schemas": {type: JSON Schema (draft 2020-12) of a whole event of that type}}``."""
    return jsonify(schemas=schemas.all_schemas())
