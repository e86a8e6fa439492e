"""``/api/endpoints``: endpoints, their commands and the dry run, as JSON.

Reads need the viewer role (the dry run too: it changes nothing); changes need admin.
Secrets appear only in the answers to ``POST /api/endpoints`` and ``.../rotate-secret``.
Endpoints owned by a config file answer 409 ``config_managed`` to every change. Errors are
``{"error", "detail"}``.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.accounts.auth import require_role
from app.api import bp
from app.extensions import db
from app.webhooks import drafting
from app.webhooks.models import Endpoint
from app.webhooks.views_support import (
    ManageError,
    add_endpoint,
    command_dict,
    command_view,
    command_views,
    delete_command,
    dry_run,
    dry_run_dict,
    endpoint_dict,
    endpoint_row,
    endpoint_rows,
    ensure_console_owned,
    remove_endpoint,
    rotate_secret,
    save_command,
    update_endpoint,
)

ENDPOINT_FIELDS = {"provider", "name", "secret", "settings"}
EDITABLE_FIELDS = {"name", "enabled", "settings"}


def _error(error: ManageError):
    return jsonify(error=error.error, detail=error.detail), error.status


def _body() -> dict:
    """The JSON object sent; ``ManageError`` 400 when the body is not one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ManageError(
            400, "invalid_json", "send a JSON object (Content-Type: application/json)"
        )
    return body


def _only(body: dict, allowed: set[str], hints: dict[str, str] | None = None) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        hint = next(((hints or {})[key] for key in unknown if key in (hints or {})), "")
        raise ManageError(
            400,
            "invalid_field",
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            + (f". {hint}" if hint else ""),
        )


def _endpoint(endpoint_id: str) -> Endpoint:
    return db.get_or_404(Endpoint, endpoint_id, description=f"there is no endpoint {endpoint_id}")


@bp.get("/endpoints")
@require_role("viewer")
def list_endpoints():
    """``{"endpoints": [endpoint...]}``; an endpoint is ``{"id", "provider", "name", "url",
    "path", "enabled", "settings", "source", "config_file", "read_only", "secret": {"stored",
    "env", "masked"}, "created_at", "delivery_count", "last_delivery_at"}`` (never the secret)."""
    return jsonify(endpoints=[endpoint_dict(row) for row in endpoint_rows()])


@bp.post("/endpoints")
@require_role("admin")
def create_endpoint():
    """Create from ``{"provider", "name", "secret"?, "settings"?}``; 201 with the endpoint and
    its ``"secret"``, shown only in this answer."""
    try:
        body = _body()
        _only(body, ENDPOINT_FIELDS)
        endpoint, secret = add_endpoint(
            body.get("provider"), body.get("name"), body.get("secret"), body.get("settings")
        )
    except ManageError as exc:
        return _error(exc)
    return jsonify({**endpoint_dict(endpoint_row(endpoint)), "secret": secret}), 201


@bp.get("/endpoints/<endpoint_id>")
@require_role("viewer")
def get_endpoint(endpoint_id: str):
    """One endpoint (as in the list)."""
    return jsonify(endpoint_dict(endpoint_row(_endpoint(endpoint_id))))


@bp.patch("/endpoints/<endpoint_id>")
@require_role("admin")
def patch_endpoint(endpoint_id: str):
    """Change ``{"name"?, "enabled"?, "settings"?}``; the provider cannot change and the
    secret changes with ``rotate-secret``."""
    endpoint = _endpoint(endpoint_id)
    try:
        ensure_console_owned(endpoint)
        body = _body()
        _only(
            body,
            EDITABLE_FIELDS,
            {
                "secret": "Change the secret with POST /api/endpoints/<id>/rotate-secret",
                "provider": "The provider cannot change: create another endpoint",
            },
        )
        update_endpoint(
            endpoint,
            name=body.get("name"),
            enabled=body.get("enabled"),
            settings=body.get("settings"),
        )
    except ManageError as exc:
        db.session.rollback()
        return _error(exc)
    return jsonify(endpoint_dict(endpoint_row(endpoint)))


@bp.delete("/endpoints/<endpoint_id>")
@require_role("admin")
def delete_endpoint(endpoint_id: str):
    """Delete the endpoint with its deliveries and dynamic commands (its cases stay):
    ``{"deleted": id, "deliveries_deleted": n}``."""
    endpoint = _endpoint(endpoint_id)
    try:
        dropped = remove_endpoint(endpoint)
    except ManageError as exc:
        return _error(exc)
    return jsonify(deleted=endpoint_id, deliveries_deleted=dropped)


@bp.post("/endpoints/<endpoint_id>/rotate-secret")
@require_role("admin")
def rotate_endpoint_secret(endpoint_id: str):
    """A new secret (``{"secret"}`` to set a given one, e.g. Slack's; else generated): the
    endpoint with its ``"secret"``, shown only in this answer. The old one stops working."""
    endpoint = _endpoint(endpoint_id)
    try:
        body = request.get_json(silent=True) if request.get_data() else {}
        if not isinstance(body, dict):
            raise ManageError(400, "invalid_json", "send a JSON object, or nothing")
        _only(body, {"secret"})
        secret = rotate_secret(endpoint, body.get("secret"))
    except ManageError as exc:
        return _error(exc)
    return jsonify({**endpoint_dict(endpoint_row(endpoint)), "secret": secret})


# --- commands ---------------------------------------------------------------------------------


@bp.get("/endpoints/<endpoint_id>/commands")
@require_role("viewer")
def list_commands(endpoint_id: str):
    """``{"commands": [command...]}`` in the order they run; a command is its definition
    (``name``, ``trigger``, ``conditions``, ``priority``, ``action``, templates, ...) plus
    ``kind`` (builtin | dynamic | override), ``source``, ``badges`` and ``deletable``."""
    endpoint = _endpoint(endpoint_id)
    return jsonify(commands=[command_dict(view) for view in command_views(endpoint)])


@bp.post("/endpoints/<endpoint_id>/commands")
@require_role("admin")
def create_command(endpoint_id: str):
    """Create a dynamic command (named like a built-in: it overrides it); 201. Invalid: 400
    ``invalid_command`` naming the field (a template error with its line)."""
    endpoint = _endpoint(endpoint_id)
    try:
        view = save_command(endpoint, _body(), replacing=None, source="api")
    except ManageError as exc:
        return _error(exc)
    return jsonify(command_dict(view)), 201


@bp.get("/endpoints/<endpoint_id>/commands/<name>")
@require_role("viewer")
def get_command(endpoint_id: str, name: str):
    try:
        return jsonify(command_dict(command_view(_endpoint(endpoint_id), name)))
    except ManageError as exc:
        return _error(exc)


@bp.patch("/endpoints/<endpoint_id>/commands/<name>")
@require_role("admin")
def patch_command(endpoint_id: str, name: str):
    """Change some fields of a command; on a built-in this stores an override of it (e.g.
    ``{"enabled": false}`` switches it off for this endpoint)."""
    endpoint = _endpoint(endpoint_id)
    try:
        current = command_view(endpoint, name)
        body = _body()
        merged: dict[str, Any] = {**current.command.to_dict(), **body}
        merged.pop("builtin", None)
        view = save_command(endpoint, merged, replacing=name, source="api")
    except ManageError as exc:
        return _error(exc)
    return jsonify(command_dict(view))


@bp.delete("/endpoints/<endpoint_id>/commands/<name>")
@require_role("admin")
def delete_command_api(endpoint_id: str, name: str):
    """Delete a dynamic command: ``{"deleted": name, "builtin_restored": bool}``. A built-in
    answers 409 ``builtin_command``: disable or override it instead."""
    endpoint = _endpoint(endpoint_id)
    try:
        restored = delete_command(endpoint, name)
    except ManageError as exc:
        return _error(exc)
    return jsonify(deleted=name, builtin_restored=restored)


@bp.post("/endpoints/<endpoint_id>/dry-run")
@require_role("viewer")
def dry_run_api(endpoint_id: str):
    """What each command would do, changing nothing, for ``{"delivery_id"}`` (a stored
    delivery: its id or the provider's delivery id) or ``{"event_type", "payload"}``:
    ``{"source", "event_type", "subjects": [{"event_type", "commands": [{"name", "builtin",
    "action", "matched", "runs", "reason", "title", "timeline"}]}]}``."""
    endpoint = _endpoint(endpoint_id)
    try:
        body = _body()
        _only(body, {"delivery_id", "event_type", "payload", "fixture"})
        result = dry_run(
            endpoint,
            delivery_pk=body.get("delivery_id"),
            fixture=body.get("fixture"),
            event_type=body.get("event_type"),
            payload=body.get("payload"),
        )
    except ManageError as exc:
        return _error(exc)
    return jsonify(dry_run_dict(result))


@bp.post("/endpoints/<endpoint_id>/commands/draft")
@require_role("admin")
def draft_command_api(endpoint_id: str):
    """Draft a command from ``{"description"}`` with the configured LLM, stored nowhere:
    ``{"command": definition, "model", "dry_run": {"checked", "matched", "runs", "results"}}``
    (app/webhooks/drafting.py). Save it with ``POST .../commands``. 422 ``invalid_draft`` with
    the validation message; 503 ``llm_not_configured`` naming the settings; 502
    ``llm_failed``."""
    endpoint = _endpoint(endpoint_id)
    try:
        body = _body()
        _only(body, {"description"})
        draft = drafting.draft_command(endpoint, body.get("description"))
    except ManageError as exc:
        return _error(exc)
    return jsonify(
        command=draft.definition, model=draft.model, dry_run=drafting.draft_dry_run_dict(draft)
    )
