"""``/api/endpoints``: endpoints, their commands and the dry run, as JSON.

Reads need the viewer role (the dry run too: it changes nothing); changes need admin.
Secrets appear only in the answers to ``POST /api/endpoints`` and ``.../rotate-secret``.
Endpoints owned by a config file answer 409 ``config_managed`` to every change.
"""

from __future__ import annotations

from typing import Any

from flask import request

from app.accounts.auth import require_role
from app.api import bp
from app.api.schemas.endpoints import (
    Command,
    CommandDeleted,
    CommandFields,
    CommandList,
    DraftBody,
    Drafted,
    DryRun,
    DryRunBody,
    Endpoint,
    EndpointCreate,
    EndpointDeleted,
    EndpointList,
    EndpointPatch,
    EndpointSecretBody,
    EndpointWithSecret,
)
from app.api.spec import operation, validate
from app.extensions import db
from app.webhooks import drafting, models
from app.webhooks.views_support import (
    ManageError,
    add_endpoint,
    command_view,
    command_views,
    delete_command,
    dry_run,
    endpoint_row,
    endpoint_rows,
    ensure_console_owned,
    remove_endpoint,
    rotate_secret,
    save_command,
    update_endpoint,
)


def _endpoint(endpoint_id: str) -> models.Endpoint:
    return db.get_or_404(
        models.Endpoint, endpoint_id, description=f"there is no endpoint {endpoint_id}"
    )


@bp.get("/endpoints")
@require_role("viewer")
@operation(responses={200: EndpointList}, tag="endpoints")
def list_endpoints() -> EndpointList:
    """Every endpoint (never its secret, only where it is kept)."""
    return EndpointList(endpoints=[Endpoint.of(row) for row in endpoint_rows()])


@bp.post("/endpoints")
@require_role("admin")
@operation(body=EndpointCreate, responses={201: EndpointWithSecret}, tag="endpoints")
def create_endpoint(body: EndpointCreate) -> tuple[EndpointWithSecret, int]:
    """Create an endpoint; the answer shows its secret, only this once."""
    endpoint, secret = add_endpoint(body.provider, body.name, body.secret, body.settings)
    return EndpointWithSecret.of(endpoint_row(endpoint), secret), 201


@bp.get("/endpoints/<endpoint_id>")
@require_role("viewer")
@operation(responses={200: Endpoint}, tag="endpoints")
def get_endpoint(endpoint_id: str) -> Endpoint:
    """One endpoint (as in the list)."""
    return Endpoint.of(endpoint_row(_endpoint(endpoint_id)))


@bp.patch("/endpoints/<endpoint_id>")
@require_role("admin")
@operation(body=EndpointPatch, responses={200: Endpoint}, tag="endpoints")
def patch_endpoint(endpoint_id: str, body: EndpointPatch) -> Endpoint:
    """Change the name, enabled and/or settings.

    The provider cannot change and the secret changes with ``rotate-secret``.
    """
    endpoint = _endpoint(endpoint_id)
    ensure_console_owned(endpoint)
    update_endpoint(endpoint, name=body.name, enabled=body.enabled, settings=body.settings)
    return Endpoint.of(endpoint_row(endpoint))


@bp.delete("/endpoints/<endpoint_id>")
@require_role("admin")
@operation(responses={200: EndpointDeleted}, tag="endpoints")
def delete_endpoint(endpoint_id: str) -> EndpointDeleted:
    """Delete the endpoint with its deliveries and dynamic commands (its cases stay)."""
    dropped = remove_endpoint(_endpoint(endpoint_id))
    return EndpointDeleted(deleted=endpoint_id, deliveries_deleted=dropped)


@bp.post("/endpoints/<endpoint_id>/rotate-secret")
@require_role("admin")
@operation(
    body=EndpointSecretBody,
    responses={200: EndpointWithSecret},
    tag="endpoints",
    parse_body_first=False,
)
def rotate_endpoint_secret(endpoint_id: str) -> EndpointWithSecret:
    """A new secret (given, e.g. Slack's, or generated); the old one stops working at once.

    The body is optional. The answer shows the secret, only this once.
    """
    endpoint = _endpoint(endpoint_id)
    body = EndpointSecretBody() if not request.get_data() else _parsed(EndpointSecretBody)
    secret = rotate_secret(endpoint, body.secret)
    return EndpointWithSecret.of(endpoint_row(endpoint), secret)


def _parsed(model: Any) -> Any:
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        raise ManageError(400, "invalid_json", "send a JSON object, or nothing")
    return validate(model, document)


# --- commands ---------------------------------------------------------------------------------


@bp.get("/endpoints/<endpoint_id>/commands")
@require_role("viewer")
@operation(responses={200: CommandList}, tag="commands")
def list_commands(endpoint_id: str) -> CommandList:
    """The commands in force on the endpoint, in the order they run."""
    endpoint = _endpoint(endpoint_id)
    return CommandList(commands=[Command.of(view) for view in command_views(endpoint)])


@bp.post("/endpoints/<endpoint_id>/commands")
@require_role("admin")
@operation(body=CommandFields, responses={201: Command}, tag="commands")
def create_command(endpoint_id: str, body: CommandFields) -> tuple[Command, int]:
    """Create a dynamic command (named like a built-in: it overrides it).

    Invalid: 400 ``invalid_command`` naming the field (a template error with its line).
    """
    endpoint = _endpoint(endpoint_id)
    view = save_command(endpoint, body.given(), replacing=None, source="api")
    return Command.of(view), 201


@bp.get("/endpoints/<endpoint_id>/commands/<name>")
@require_role("viewer")
@operation(responses={200: Command}, tag="commands")
def get_command(endpoint_id: str, name: str) -> Command:
    """One command in force on the endpoint."""
    return Command.of(command_view(_endpoint(endpoint_id), name))


@bp.patch("/endpoints/<endpoint_id>/commands/<name>")
@require_role("admin")
@operation(body=CommandFields, responses={200: Command}, tag="commands")
def patch_command(endpoint_id: str, name: str, body: CommandFields) -> Command:
    """Change some fields of a command.

    On a built-in this stores an override of it (e.g. ``{"enabled": false}`` switches it
    off for this endpoint).
    """
    endpoint = _endpoint(endpoint_id)
    current = command_view(endpoint, name)
    merged: dict[str, Any] = {**current.command.to_dict(), **body.given()}
    merged.pop("builtin", None)
    return Command.of(save_command(endpoint, merged, replacing=name, source="api"))


@bp.delete("/endpoints/<endpoint_id>/commands/<name>")
@require_role("admin")
@operation(responses={200: CommandDeleted}, tag="commands")
def delete_command_api(endpoint_id: str, name: str) -> CommandDeleted:
    """Delete a dynamic command (an override: the built-in is back).

    A built-in answers 409 ``builtin_command``: disable or override it instead.
    """
    restored = delete_command(_endpoint(endpoint_id), name)
    return CommandDeleted(deleted=name, builtin_restored=restored)


@bp.post("/endpoints/<endpoint_id>/dry-run")
@require_role("viewer")
@operation(body=DryRunBody, responses={200: DryRun}, tag="commands")
def dry_run_api(endpoint_id: str, body: DryRunBody) -> DryRun:
    """What each command would do with a delivery, changing nothing."""
    result = dry_run(
        _endpoint(endpoint_id),
        delivery_pk=body.delivery_id,
        fixture=body.fixture,
        event_type=body.event_type,
        payload=body.payload,
    )
    return DryRun.of(result)


@bp.post("/endpoints/<endpoint_id>/commands/draft")
@require_role("admin")
@operation(body=DraftBody, responses={200: Drafted}, tag="commands")
def draft_command_api(endpoint_id: str, body: DraftBody) -> Drafted:
    """Draft a command from a description with the configured LLM, stored nowhere.

    Save it with ``POST .../commands``. 422 ``invalid_draft`` with the validation message;
    503 ``llm_not_configured`` naming the settings; 502 ``llm_failed``.
    """
    draft = drafting.draft_command(_endpoint(endpoint_id), body.description)
    return Drafted(
        command=draft.definition,
        model=draft.model,
        dry_run=drafting.draft_dry_run_dict(draft),
    )
