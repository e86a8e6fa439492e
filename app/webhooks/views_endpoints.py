"""Console: endpoints (list, create, edit, rotate secret, delete), their commands, the dry
run and the test delivery.

Viewers and engineers read; admins manage (``require_role("admin")`` on every change). The
dry run changes nothing, so every role may run it. Endpoints owned by a config file are shown
read-only. Each view answers the full page, or its fragment to htmx (``page_or_fragment``);
forms with errors answer 422 with the fragment showing them inline.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from app.accounts.auth import require_role
from app.extensions import db
from app.templating import htmx_response, page_or_fragment
from app.webhooks import bp, drafting, forms, reply_settings
from app.webhooks.cli import endpoint_url
from app.webhooks.commands import ACTIONS, OPS
from app.webhooks.models import Endpoint
from app.webhooks.providers import PROVIDERS, get_provider
from app.webhooks.views_support import (
    KNOWN_SETTINGS,
    SECRET_FROM_PROVIDER,
    SECRET_HINTS,
    ManageError,
    add_endpoint,
    command_view,
    command_views,
    delete_command,
    dry_run,
    dry_run_choices,
    endpoint_row,
    endpoint_rows,
    ensure_console_owned,
    remove_endpoint,
    rotate_secret,
    sample_names,
    save_command,
    secret_display,
    send_test_delivery,
    set_command_enabled,
    update_endpoint,
)


def _render(template: str, status: int = 200, /, **context: Any):
    return htmx_response(render_template(template, **context), status)


def _endpoint(endpoint_id: str) -> Endpoint:
    return db.get_or_404(Endpoint, endpoint_id, description=f"there is no endpoint {endpoint_id}")


def _refuse(error: ManageError):
    """A refusal that is no form's fault (config endpoint, built-in): its status, readable."""
    abort(error.status, description=error.detail)


# --- the endpoints list -------------------------------------------------------------------------


def _endpoints(status: int = 200, **context: Any):
    context.setdefault("values", {"provider": "github", "name": "", "secret": ""})
    return page_or_fragment(
        "webhooks/endpoints.html",
        "webhooks/_endpoints.html",
        status,
        rows=endpoint_rows(),
        providers=sorted(PROVIDERS),
        secret_hints=SECRET_HINTS,
        secret_from_provider=SECRET_FROM_PROVIDER,
        public_url=current_app.config["PUBLIC_URL"],
        **context,
    )


@bp.get("/endpoints")
@require_role("viewer")
def endpoints():
    """Console: the endpoints (provider, URL, state, source, deliveries, last delivery), and
    for admins a form to add one."""
    return _endpoints()


@bp.post("/endpoints")
@require_role("admin")
def create_endpoint():
    """Create an endpoint; the answer shows its secret this once (then only masked)."""
    values = {key: request.form.get(key, "") for key in ("provider", "name", "secret")}
    try:
        endpoint, secret = add_endpoint(values["provider"], values["name"], values["secret"])
    except ManageError as exc:
        return _endpoints(422, values=values, errors={exc.field or "form": exc.detail})
    return _endpoints(201, created=endpoint, secret=secret, url=endpoint_url(endpoint))


# --- one endpoint ---------------------------------------------------------------------------------


def _settings_context(endpoint: Endpoint, **context: Any) -> dict:
    row = endpoint_row(endpoint)
    settings = endpoint.settings or {}
    context.setdefault(
        "values",
        {
            "name": endpoint.name,
            "enabled": endpoint.enabled,
            "settings": forms.settings_text(endpoint.provider, settings),
            **{key: settings.get(key, "") for key in KNOWN_SETTINGS.get(endpoint.provider, {})},
            **forms.reply_values(endpoint.provider, settings),
        },
    )
    provider = get_provider(endpoint.provider)
    return {
        "endpoint": endpoint,
        "row": row,
        "url": endpoint_url(endpoint),
        "secret_masked": secret_display(endpoint),
        "secret_hint": SECRET_HINTS.get(endpoint.provider, "the secret"),
        "secret_from_provider": SECRET_FROM_PROVIDER.get(endpoint.provider),
        "known_settings": KNOWN_SETTINGS.get(endpoint.provider, {}),
        "setting_help": provider.setting_help if provider else {},
        "public_settings": reply_settings.public(settings),
        "reply_token": reply_settings.token_state(settings),
        "reply_default_api": provider.default_api_url if provider else None,
        "reply_options": provider.reply_options if provider else {},
        "errors": context.pop("errors", {}),
        **context,
    }


def _commands_context(endpoint: Endpoint, **context: Any) -> dict:
    return {
        "endpoint": endpoint,
        "commands": command_views(endpoint),
        "llm_ready": drafting.llm_configured(),
        **context,
    }


def _endpoint_page(endpoint: Endpoint, status: int = 200, **context: Any):
    """The full endpoint page; ``context`` may fill its parts: the settings fragment's
    (``values``, ``errors``, ``new_secret``, ``saved``), ``command_form``, ``dry``, ``test``."""
    settings_keys = ("values", "errors", "new_secret", "saved")
    settings_extra = {k: context.pop(k) for k in settings_keys if k in context}
    return _render(
        "webhooks/endpoint.html",
        status,
        **_settings_context(endpoint, **settings_extra),
        commands=command_views(endpoint),
        choices=dry_run_choices(endpoint),
        fixtures=sample_names(endpoint.provider),
        llm_ready=drafting.llm_configured(),
        **context,
    )


def _part(endpoint: Endpoint, fragment: str, status: int = 200, **context: Any):
    """htmx gets ``fragment`` (with ``context``); others the endpoint page showing it."""
    if not request.htmx:
        return _endpoint_page(endpoint, status, **context)
    return _render(fragment, status, endpoint=endpoint, **context)


@bp.get("/endpoints/<endpoint_id>")
@require_role("viewer")
def endpoint(endpoint_id: str):
    """Console: one endpoint: URL, masked secret, settings, commands, dry run, test delivery."""
    return _endpoint_page(_endpoint(endpoint_id))


def _settings(endpoint: Endpoint, status: int = 200, **context: Any):
    if not request.htmx:
        return _endpoint_page(endpoint, status, **context)
    return _render(
        "webhooks/_endpoint_settings.html", status, **_settings_context(endpoint, **context)
    )


@bp.post("/endpoints/<endpoint_id>")
@require_role("admin")
def edit_endpoint(endpoint_id: str):
    """Change the name, enabled and settings (fields ``name``, ``enabled``, ``settings`` as
    JSON, and per-provider fields such as Alertmanager's ``group_by``)."""
    endpoint = _endpoint(endpoint_id)
    own = KNOWN_SETTINGS.get(endpoint.provider, {})
    # The form sends a hidden "0" before the checkbox's "1": the last value counts; no value
    # at all leaves the state as it is.
    sent = request.form.getlist("enabled")
    enabled = sent[-1] in ("1", "on", "true") if sent else None
    values = {
        "name": request.form.get("name", ""),
        "enabled": endpoint.enabled if enabled is None else enabled,
        "settings": request.form.get("settings", ""),
        **{key: request.form.get(key, "") for key in own},
        **{
            key: value
            for key, value in request.form.items()
            if key.startswith("reply_") and key != "reply_token"
        },
    }
    try:
        update_endpoint(
            endpoint,
            name=values["name"],
            enabled=enabled,
            settings=forms.read_settings_form(endpoint.provider, request.form),
        )
    except ManageError as exc:
        if exc.status == 409:
            _refuse(exc)
        db.session.rollback()
        return _settings(endpoint, 422, values=values, errors={exc.field or "form": exc.detail})
    if not request.htmx:
        flash(f"Saved endpoint {endpoint.name}.")
        return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id))
    return _settings(endpoint, saved=True)


@bp.post("/endpoints/<endpoint_id>/rotate-secret")
@require_role("admin")
def rotate_endpoint_secret(endpoint_id: str):
    """Give the endpoint a new secret (field ``secret``, or generated), shown this once."""
    endpoint = _endpoint(endpoint_id)
    try:
        secret = rotate_secret(endpoint, request.form.get("secret"))
    except ManageError as exc:
        if exc.status == 409:
            _refuse(exc)
        return _settings(endpoint, 422, errors={"secret": exc.detail})
    return _settings(endpoint, new_secret=secret)


@bp.post("/endpoints/<endpoint_id>/delete")
@require_role("admin")
def delete_endpoint(endpoint_id: str):
    """Delete the endpoint, its deliveries and its dynamic commands; its cases stay."""
    endpoint = _endpoint(endpoint_id)
    name = endpoint.name
    try:
        dropped = remove_endpoint(endpoint)
    except ManageError as exc:
        _refuse(exc)
    flash(f"Deleted endpoint {name} and its {dropped} deliveries. Its cases stay.")
    if request.htmx:
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = url_for("webhooks.endpoints")
        return response
    return redirect(url_for("webhooks.endpoints"))


# --- commands ---------------------------------------------------------------------------------


def _commands(endpoint: Endpoint, status: int = 200, **context: Any):
    if not request.htmx:
        if "message" in context:
            flash(context["message"])
        return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id) + "#commands")
    return _render("webhooks/_commands.html", status, **_commands_context(endpoint, **context))


@bp.get("/endpoints/<endpoint_id>/commands")
@require_role("viewer")
def commands(endpoint_id: str):
    """The commands panel: built-in and dynamic side by side, in the order they run."""
    return _commands(_endpoint(endpoint_id))


def _command_form(
    endpoint: Endpoint,
    values: dict,
    replacing: str | None,
    kind: str,
    errors: dict | None = None,
    status: int = 200,
):
    command_form = _command_form_context(values, replacing, kind, errors)
    return _part(endpoint, "webhooks/_command_form.html", status, command_form=command_form)


def _command_form_context(
    values: dict, replacing: str | None, kind: str, errors: dict | None = None
) -> dict:
    return {
        "values": values,
        "rows": forms.condition_rows(values),
        "replacing": replacing,
        "kind": kind,
        "errors": errors or {},
        "actions": ACTIONS,
        "ops": OPS,
    }


@bp.post("/endpoints/<endpoint_id>/commands/draft")
@require_role("admin")
def draft_command_view(endpoint_id: str):
    """Draft a command from ``description`` with the LLM (app/webhooks/drafting.py): the
    command form pre-filled and the draft's dry run, nothing saved. Refused (no LLM, the LLM
    failed, its answer invalid): 422 with the reason, so htmx shows it in place."""
    endpoint = _endpoint(endpoint_id)
    fragment = "webhooks/_command_draft_result.html"
    try:
        draft = drafting.draft_command(endpoint, request.form.get("description", ""))
    except ManageError as exc:
        if exc.status == 409:
            _refuse(exc)
        return _part(endpoint, fragment, 422, draft_error=exc.detail)
    command_form = _command_form_context(forms.command_values(draft.command), None, "dynamic")
    dry = drafting.draft_dry_run_dict(draft)
    return _part(endpoint, fragment, command_form=command_form, draft=draft, draft_dry=dry)


@bp.get("/endpoints/<endpoint_id>/commands/new")
@require_role("admin")
def new_command(endpoint_id: str):
    """The form for a new dynamic command (a fragment for the panel's editor)."""
    endpoint = _endpoint(endpoint_id)
    try:
        ensure_console_owned(endpoint)
    except ManageError as exc:
        _refuse(exc)
    return _command_form(endpoint, forms.command_values(None), None, "dynamic")


@bp.get("/endpoints/<endpoint_id>/commands/<name>/edit")
@require_role("admin")
def edit_command(endpoint_id: str, name: str):
    """The form to edit a command; for a built-in, saving stores an override of it."""
    endpoint = _endpoint(endpoint_id)
    try:
        view = command_view(endpoint, name)
        ensure_console_owned(endpoint)
    except ManageError as exc:
        _refuse(exc)
    return _command_form(endpoint, forms.command_values(view.command), name, view.kind)


@bp.post("/endpoints/<endpoint_id>/commands")
@require_role("admin")
def save_command_view(endpoint_id: str):
    """Save the command form (``replacing`` names the command edited). Invalid: 422 with the
    form and the field's error (a template error with its line); saved: the commands panel."""
    endpoint = _endpoint(endpoint_id)
    definition, values = forms.read_command_form(request.form)
    replacing = request.form.get("replacing") or None
    kind = request.form.get("kind") or "dynamic"
    try:
        view = save_command(endpoint, definition, replacing=replacing, source="console")
    except ManageError as exc:
        if exc.error == "config_managed":
            _refuse(exc)
        errors = forms.field_errors(exc.field, exc.detail.split(": ", 1)[-1])
        return _command_form(endpoint, values, replacing, kind, errors, 422)
    message = f"Saved command {view.name}."
    if not request.htmx:
        flash(message)
        return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id) + "#commands")
    response = _commands(endpoint, message=message)
    # The form asked to be replaced; the saved command belongs in the panel instead.
    response.headers["HX-Retarget"] = "#commands"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


@bp.post("/endpoints/<endpoint_id>/commands/<name>/enabled")
@require_role("admin")
def set_command_enabled_view(endpoint_id: str, name: str):
    """Enable (``enabled=1``) or disable (``enabled=0``) a command, built-ins too."""
    endpoint = _endpoint(endpoint_id)
    enabled = request.form.get("enabled") == "1"
    try:
        set_command_enabled(endpoint, name, enabled)
    except ManageError as exc:
        _refuse(exc)
    return _commands(endpoint, message=f"{'Enabled' if enabled else 'Disabled'} {name}.")


@bp.post("/endpoints/<endpoint_id>/commands/<name>/delete")
@require_role("admin")
def delete_command_view(endpoint_id: str, name: str):
    """Delete a dynamic command (an override: the built-in is back). Built-ins: 409."""
    endpoint = _endpoint(endpoint_id)
    try:
        restored = delete_command(endpoint, name)
    except ManageError as exc:
        _refuse(exc)
    message = f"Deleted {name}" + ("; the built-in command is back in force." if restored else ".")
    return _commands(endpoint, message=message)


# --- dry run and test delivery ----------------------------------------------------------------


@bp.post("/endpoints/<endpoint_id>/dry-run")
@require_role("viewer")
def dry_run_view(endpoint_id: str):
    """What every command would do with a stored delivery or a shipped sample (field ``subject``:
    ``delivery:<id>`` or ``fixture:<name>``), changing nothing."""
    endpoint = _endpoint(endpoint_id)
    kind, _, key = request.form.get("subject", "").partition(":")
    try:
        if kind == "delivery" and key:
            result = dry_run(endpoint, delivery_pk=key)
        elif kind == "fixture" and key:
            result = dry_run(endpoint, fixture=key)
        else:
            raise ManageError(400, "invalid_dry_run", "choose a delivery or a sample", "subject")
    except ManageError as exc:
        return _part(endpoint, "webhooks/_dry_run.html", 422, dry={"error": exc.detail})
    return _part(endpoint, "webhooks/_dry_run.html", dry={"result": result})


@bp.post("/endpoints/<endpoint_id>/test-delivery")
@require_role("admin")
def test_delivery_view(endpoint_id: str):
    """Send the chosen shipped sample (field ``fixture``) through the real route, signed for the
    endpoint's provider; shows the route's answer and the stored delivery."""
    endpoint = _endpoint(endpoint_id)
    try:
        sent = send_test_delivery(endpoint, request.form.get("fixture", ""))
    except ManageError as exc:
        return _part(endpoint, "webhooks/_test_delivery.html", 422, test={"error": exc.detail})
    return _part(endpoint, "webhooks/_test_delivery.html", test={"sent": sent})
