"""Managing endpoints, commands and deliveries: what the console and the JSON API share.

The console views (``views_endpoints``, ``views_deliveries``) and the API modules
(``app/api/endpoints.py``, ``app/api/deliveries.py``) call these functions and only translate
their answers (HTML or JSON) and their ``ManageError`` (a status, an error slug, a sentence,
and the form field at fault). The domain underneath is ``command_store``, ``ingest``,
``secrets`` and ``cli.create_endpoint``; this module adds the rules of managing them:

- endpoints owned by a config file (``source == "config"``) are read-only here (409
  ``config_managed``): the file is the truth, ``flask config sync`` rewrites them;
- secrets leave Casehook only in the answer to a create or a rotate;
- built-in commands are disabled or overridden, never deleted (409 ``builtin_command``);
- a test delivery is a sample the provider module ships, sent through the real ingest route
  signed the way that provider signs (``Provider.sample_request``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import func
from sqlalchemy.orm import defer

from app.errors import DomainError
from app.extensions import db
from app.inputs import page_number
from app.templating import as_utc
from app.webhooks import command_store, mentions, reply_settings
from app.webhooks.cli import create_endpoint
from app.webhooks.command_store import DryRunRow
from app.webhooks.commands import Command, CommandError
from app.webhooks.ingest import forget_endpoint, replay_delivery
from app.webhooks.models import CommandRecord, Delivery, Endpoint
from app.webhooks.payloads import parse_payload
from app.webhooks.providers import PROVIDERS, get_provider
from app.webhooks.providers.base import PayloadError, Sample
from app.webhooks.secrets import SecretUnavailable, endpoint_secret, generate_secret, store_secret

#: Verdicts and statuses a delivery can have (``Delivery``), for filters.
VERDICTS = ("accepted", "rejected", "unauthorized")
STATUSES = ("received", "processed", "failed", "refused")
DELIVERIES_PER_PAGE = 50
#: Deliveries offered for a dry run (the most recent accepted ones).
DRY_RUN_CHOICES = 50
MAX_NAME = 200
MAX_SECRET = 1000
MAX_SETTINGS_BYTES = 10_000
# Views of what each provider module says about itself (``Provider`` class attributes).
#: Providers that make the secret themselves: the one Casehook generates is a placeholder
#: until the provider's is pasted (rotate with a given secret).
SECRET_FROM_PROVIDER = {n: p.secret_from_provider for n, p in PROVIDERS.items()
                        if p.secret_from_provider}  # fmt: skip
#: What the secret is on each provider's side (console hints).
SECRET_HINTS = {name: provider.secret_hint for name, provider in PROVIDERS.items()}
#: Provider options an endpoint may set, with their allowed values (None: any JSON value).
KNOWN_SETTINGS: dict[str, dict[str, tuple | None]] = {
    name: dict(provider.known_settings) for name, provider in PROVIDERS.items()
}


class ManageError(DomainError):
    """A refused management request: HTTP ``status``, ``error`` slug, ``detail`` sentence, and
    the form ``field`` at fault (None when it is not one field's)."""

    def __init__(self, status: int, error: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail, status=status, error=error, field=field)


# --- endpoints --------------------------------------------------------------------------------


def ensure_console_owned(endpoint: Endpoint) -> None:
    """``ManageError`` 409 ``config_managed`` when a config file owns ``endpoint``."""
    if endpoint.source == "config":
        raise ManageError(
            409,
            "config_managed",
            f"endpoint {endpoint.id} is managed by the config file {endpoint.config_file or '?'}"
            " (CASEHOOK_CONFIG_DIR): change the file and run `flask config sync`; it cannot "
            "be changed in the console or the API",
        )


def check_provider(provider: Any) -> str:
    provider = str(provider or "").strip()
    if provider not in PROVIDERS:
        raise ManageError(
            400,
            "invalid_endpoint",
            f"provider must be one of {', '.join(sorted(PROVIDERS))}",
            "provider",
        )
    return provider


def check_name(name: Any) -> str:
    """The endpoint name, stripped; ``ManageError`` (field ``name``) when blank or too long."""
    name = " ".join(str(name or "").split())
    if not name:
        raise ManageError(
            400, "invalid_endpoint", "give the endpoint a name, e.g. the repository", "name"
        )
    if len(name) > MAX_NAME:
        raise ManageError(
            400, "invalid_endpoint", f"the name is longer than {MAX_NAME} characters", "name"
        )
    return name


def check_secret(provider: str, secret: Any) -> str | None:
    """A given secret, stripped (None when blank: generate one). ``ManageError`` (field
    ``secret``) when it cannot work for ``provider``."""
    if secret is None:
        return None
    if not isinstance(secret, str):
        raise ManageError(400, "invalid_secret", "the secret must be a string", "secret")
    secret = secret.strip()
    if not secret:
        return None
    if len(secret) > MAX_SECRET or any(ord(c) < 32 for c in secret):
        raise ManageError(
            400,
            "invalid_secret",
            f"the secret must be one line of at most {MAX_SECRET} characters",
            "secret",
        )
    module = get_provider(provider)
    refusal = module.check_secret(secret) if module else None
    if refusal:
        raise ManageError(400, "invalid_secret", refusal, "secret")
    return secret


def parse_settings(provider: str, value: Any, existing: Mapping[str, Any] | None = None) -> dict:
    """Endpoint settings from a JSON text (console) or an object (API). The options a provider
    knows (``KNOWN_SETTINGS``) are checked, and ``reply`` (``app.webhooks.reply_settings.clean``:
    its token encrypted, the stored one of ``existing`` kept when none is given); other keys
    are kept as given (as config files may). ``ManageError`` (field ``settings``)
    otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        if len(value.encode()) > MAX_SETTINGS_BYTES:
            raise ManageError(
                400, "invalid_settings", f"settings are over {MAX_SETTINGS_BYTES} bytes", "settings"
            )
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ManageError(
                400,
                "invalid_settings",
                f"settings are not valid JSON (line {getattr(exc, 'lineno', '?')}: "
                f'{getattr(exc, "msg", exc)}); write an object like {{"group_by": "groupKey"}}',
                "settings",
            ) from None
    if not isinstance(value, dict):
        raise ManageError(
            400, "invalid_settings", "settings must be a JSON object, e.g. {}", "settings"
        )
    known = KNOWN_SETTINGS.get(provider, {})
    for key, allowed in known.items():
        if key in value and allowed is not None and value[key] not in allowed:
            raise ManageError(
                400,
                "invalid_settings",
                f"{key} must be one of {', '.join(allowed)}",
                "settings",
            )
    try:
        mentions.check_settings(value)
    except mentions.MentionSettingsError as exc:
        raise ManageError(400, "invalid_settings", str(exc), "settings") from None
    if reply_settings.KEY in value:
        try:
            reply = reply_settings.clean(
                provider, value[reply_settings.KEY], reply_settings.stored(existing)
            )
        except reply_settings.ReplySettingsError as exc:
            raise ManageError(400, "invalid_settings", str(exc), "settings") from None
        value = {k: v for k, v in value.items() if k != reply_settings.KEY}
        if reply:
            value[reply_settings.KEY] = reply
    return value


def add_endpoint(
    provider: Any, name: Any, secret: Any = None, settings: Any = None
) -> tuple[Endpoint, str]:
    """Validate and create a console endpoint; returns it and its clear secret (generated
    when none is given), which is never shown again. ``ManageError`` naming the field."""
    provider = check_provider(provider)
    name = check_name(name)
    given = check_secret(provider, secret)
    settings = parse_settings(provider, settings)
    endpoint, clear = create_endpoint(provider, name, given)
    if settings:
        endpoint.settings = settings
        db.session.commit()
    return endpoint, clear


def update_endpoint(
    endpoint: Endpoint, *, name: Any = None, enabled: Any = None, settings: Any = None
) -> Endpoint:
    """Change name, enabled and/or settings (None: unchanged) and commit; refuses config
    endpoints. ``ManageError`` naming the field."""
    ensure_console_owned(endpoint)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = check_name(name)
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise ManageError(400, "invalid_endpoint", "enabled must be true or false", "enabled")
        changes["enabled"] = enabled
    if settings is not None:
        changes["settings"] = parse_settings(endpoint.provider, settings, endpoint.settings)
    for key, value in changes.items():
        setattr(endpoint, key, value)
    db.session.commit()
    return endpoint


def rotate_secret(endpoint: Endpoint, secret: Any = None) -> str:
    """Give ``endpoint`` a new secret (``secret``, or a generated one) and commit; returns it,
    shown this once. The old one stops working at once. Refuses config endpoints."""
    ensure_console_owned(endpoint)
    clear = check_secret(endpoint.provider, secret) or generate_secret(endpoint.provider)
    store_secret(endpoint, clear)
    db.session.commit()
    return clear


def remove_endpoint(endpoint: Endpoint) -> int:
    """Delete ``endpoint`` with its deliveries and dynamic commands and commit; its cases stay
    (without an endpoint). Returns how many deliveries were dropped. Refuses config
    endpoints."""
    ensure_console_owned(endpoint)
    endpoint_id = endpoint.id
    dropped = db.session.scalar(
        db.select(func.count(Delivery.id)).where(Delivery.endpoint_id == endpoint_id)
    )
    # Bulk deletes (the foreign keys null the cases' and case events' references); the ORM
    # would load every delivery first.
    db.session.execute(db.delete(Delivery).where(Delivery.endpoint_id == endpoint_id))
    db.session.execute(db.delete(CommandRecord).where(CommandRecord.endpoint_id == endpoint_id))
    db.session.execute(db.delete(Endpoint).where(Endpoint.id == endpoint_id))
    db.session.commit()
    db.session.expire_all()
    forget_endpoint(endpoint_id)
    return dropped or 0


@dataclass(frozen=True)
class EndpointRow:
    """An endpoint with its delivery count and the time of its last delivery."""

    endpoint: Endpoint
    delivery_count: int
    last_delivery_at: Any


def endpoint_rows() -> list[EndpointRow]:
    """Every endpoint, oldest first, with delivery count and last delivery time."""
    rows = db.session.execute(
        db.select(Endpoint, func.count(Delivery.id), func.max(Delivery.received_at))
        .outerjoin(Delivery, Delivery.endpoint_id == Endpoint.id)
        .group_by(Endpoint.id)
        .order_by(Endpoint.created_at, Endpoint.id)
    ).all()
    return [EndpointRow(endpoint, count, last) for endpoint, count, last in rows]


def endpoint_row(endpoint: Endpoint) -> EndpointRow:
    count, last = db.session.execute(
        db.select(func.count(Delivery.id), func.max(Delivery.received_at)).where(
            Delivery.endpoint_id == endpoint.id
        )
    ).one()
    return EndpointRow(endpoint, count, last)


def secret_display(endpoint: Endpoint) -> str:
    """How the console and API show the secret: never the secret itself."""
    if endpoint.secret_env:
        return f"from ${endpoint.secret_env}"
    return "•" * 12 if endpoint.secret_encrypted else "none"


def iso(moment: Any) -> str | None:
    """An ISO 8601 UTC time for JSON (SQLite hands back naive datetimes), or None."""
    return as_utc(moment).isoformat() if moment is not None else None


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandView:
    """A command in force on an endpoint and where it comes from.

    ``kind``: ``builtin`` (shipped in code, no stored record), ``dynamic`` (stored, its own
    name) or ``override`` (stored under a built-in's name). ``source``: ``builtin``, or the
    stored record's (``console``, ``api``, ``config``).
    """

    command: Command
    kind: str
    source: str
    updated_at: Any = None

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def deletable(self) -> bool:
        return self.kind != "builtin"

    @property
    def badges(self) -> list[str]:
        labels = {"builtin": "built-in", "dynamic": "dynamic", "override": "overrides built-in"}
        return [labels[self.kind]] + (["from config"] if self.source == "config" else [])


def command_views(endpoint: Endpoint) -> list[CommandView]:
    """Built-in and stored commands of ``endpoint``, merged, in the order they run."""
    builtin_names = {c.name for c in command_store.builtin_commands(endpoint)}
    records = {r.name: r for r in command_store.stored_commands(endpoint)}
    views = []
    for command in command_store.commands_for(endpoint):
        record = records.get(command.name)
        if record is None:
            views.append(CommandView(command, "builtin", "builtin"))
        else:
            kind = "override" if command.name in builtin_names else "dynamic"
            views.append(CommandView(command, kind, record.source, record.updated_at))
    return views


def command_view(endpoint: Endpoint, name: str) -> CommandView:
    """One command of ``endpoint`` by name; ``ManageError`` 404 when there is none."""
    for view in command_views(endpoint):
        if view.name == name:
            return view
    raise ManageError(404, "not_found", f"endpoint {endpoint.id} has no command {name!r}")


def save_command(
    endpoint: Endpoint, data: Mapping[str, Any], *, replacing: str | None, source: str
) -> CommandView:
    """Create (``replacing`` None) or replace a stored command and commit.

    Editing a built-in stores an override under its name (neither can be renamed). Raises
    ``ManageError`` 400 ``invalid_command`` naming the field (a template error says the line),
    409 for config endpoints.
    """
    ensure_console_owned(endpoint)
    builtin_names = {c.name for c in command_store.builtin_commands(endpoint)}
    record = command_store.find_record(endpoint, replacing) if replacing else None
    name = str(data.get("name") or "").strip()
    if not replacing and command_store.find_record(endpoint, name) is not None:
        raise ManageError(
            409,
            "command_exists",
            f"name: {name!r} is already a command on this endpoint; edit it instead",
            "name",
        )
    if replacing and replacing in builtin_names and name != replacing:
        # An override keeps its built-in's name: renaming it would quietly bring the built-in
        # back beside a new command.
        raise ManageError(
            400,
            "invalid_command",
            f"name: {replacing!r} is built in and cannot be renamed; create a new "
            "command instead (a command with its name overrides it)",
            "name",
        )
    if replacing and record is None and replacing not in builtin_names:
        raise ManageError(404, "not_found", f"endpoint {endpoint.id} has no command {replacing!r}")
    try:
        saved = command_store.save_command(
            endpoint, data, source=source, replacing=record.name if record else None
        )
    except CommandError as exc:
        db.session.rollback()
        raise ManageError(400, "invalid_command", str(exc), exc.field) from None
    db.session.commit()
    return command_view(endpoint, saved.name)


def set_command_enabled(endpoint: Endpoint, name: str, enabled: bool) -> CommandView:
    """Switch a command (built-ins too) on or off for ``endpoint`` and commit."""
    ensure_console_owned(endpoint)
    try:
        command_store.set_enabled(endpoint, name, enabled)
    except CommandError as exc:
        db.session.rollback()
        raise ManageError(404, "not_found", exc.message, exc.field) from None
    db.session.commit()
    return command_view(endpoint, name)


def delete_command(endpoint: Endpoint, name: str) -> bool:
    """Delete a stored command and commit; returns whether a built-in of that name is back in
    force. ``ManageError`` 409 ``builtin_command`` for a built-in, 404 for an unknown name."""
    ensure_console_owned(endpoint)
    builtin_names = {c.name for c in command_store.builtin_commands(endpoint)}
    try:
        command_store.delete_command(endpoint, name)
    except CommandError as exc:
        db.session.rollback()
        if name in builtin_names:
            raise ManageError(409, "builtin_command", exc.message, "name") from None
        raise ManageError(404, "not_found", exc.message, "name") from None
    db.session.commit()
    return name in builtin_names


# --- samples and test deliveries --------------------------------------------------------------


def sample_names(provider: str) -> list[str]:
    """The names of the samples ``provider`` ships (``issues.opened``, ...), in demo order;
    [] for a provider with none or unknown."""
    module = get_provider(provider)
    return [sample.name for sample in module.samples()] if module else []


def find_sample(provider: str, name: Any) -> Sample:
    """The shipped sample ``name`` of ``provider``; ``ManageError`` 404 (field ``fixture``)
    when it ships none of that name, 400 when no name was given."""
    module = get_provider(provider)
    sample = module.sample(name) if module and isinstance(name, str) and name else None
    if sample is None:
        raise ManageError(
            404 if name else 400,
            "unknown_fixture",
            f"no sample {name!r} for {provider}" if name else "choose a sample",
            "fixture",
        )
    return sample


@dataclass(frozen=True)
class SentFixture:
    """What the route answered a test delivery, and the delivery it stored (if any)."""

    fixture: str
    status: int
    answer: dict
    delivery: Delivery | None


def send_test_delivery(endpoint: Endpoint, fixture: Any) -> SentFixture:
    """Send the provider's shipped sample ``fixture`` through the real route
    (``POST /webhooks/<provider>/<id>``) with the headers the provider sends, signed with the
    endpoint's secret by the provider module's ``sign_request``, in process (as ``flask demo``
    does: the public URL may not be reachable from here). ``ManageError`` when the sample or
    the secret is missing."""
    sample = find_sample(endpoint.provider, fixture)
    try:
        secret = endpoint_secret(endpoint)
    except SecretUnavailable as exc:
        raise ManageError(409, "secret_unavailable", str(exc)) from None
    provider = get_provider(endpoint.provider)
    if provider is None:
        raise ManageError(400, "unknown_provider", f"no provider module {endpoint.provider!r}")
    headers = provider.sample_request(secret, sample)
    path = endpoint.path
    # End this request's transaction first: on SQLite a pending one would block the route's.
    db.session.commit()
    response = current_app.test_client().post(path, data=sample.body, headers=headers)
    answer = response.get_json(silent=True) or {}
    delivery = None
    if answer.get("delivery_id"):
        delivery = db.session.scalars(
            db.select(Delivery).where(
                Delivery.endpoint_id == endpoint.id,
                Delivery.delivery_id == answer["delivery_id"],
            )
        ).first()
    elif response.status_code == 401:
        delivery = db.session.scalars(
            db.select(Delivery)
            .where(Delivery.endpoint_id == endpoint.id)
            .order_by(Delivery.received_at.desc(), Delivery.id.desc())
        ).first()
    return SentFixture(fixture, response.status_code, answer, delivery)


# --- dry run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """What the commands of an endpoint would do with one delivery: ``subjects`` pairs each
    subject's event type (one per alert for Alertmanager) with its rows."""

    source: str
    event_type: str
    subjects: list[tuple[str, list[DryRunRow]]]


def dry_run(
    endpoint: Endpoint,
    *,
    delivery_pk: Any = None,
    fixture: Any = None,
    event_type: Any = None,
    payload: Any = None,
    draft: Command | None = None,
) -> DryRun:
    """Dry-run ``endpoint``'s commands on a stored delivery (its ``Delivery.id`` or provider
    delivery id), a fixture, or an ``event_type`` + ``payload``; changes nothing.
    ``draft``: an unsaved command run as if saved. ``ManageError`` saying which input is
    wrong."""
    if delivery_pk:
        delivery = find_delivery(endpoint, str(delivery_pk))
        if delivery.verdict != "accepted":
            raise ManageError(
                400,
                "not_dry_runnable",
                f"delivery {delivery.id} was {delivery.verdict}: it was never authentic, so no "
                "command would see it",
                "delivery_id",
            )
        try:
            payload = parse_payload(delivery.headers, delivery.body)
        except PayloadError as exc:
            raise ManageError(400, "bad_payload", str(exc), "delivery_id") from None
        source, event_type = f"delivery {delivery.delivery_id}", delivery.event_type
    elif fixture:
        sample = find_sample(endpoint.provider, fixture)
        try:
            payload = parse_payload(sample.headers, sample.body)
        except PayloadError as exc:
            raise ManageError(400, "bad_payload", f"sample {fixture}: {exc}", "fixture") from None
        provider = get_provider(endpoint.provider)
        event_type = provider.event_type(sample.headers, payload) if provider else "unknown"
        source = f"sample {fixture}"
    else:
        if not isinstance(event_type, str) or not event_type.strip():
            raise ManageError(
                400,
                "invalid_dry_run",
                'send {"delivery_id"} or {"event_type", "payload"} (or choose a fixture)',
                "event_type",
            )
        if not isinstance(payload, dict):
            raise ManageError(400, "invalid_dry_run", "payload must be a JSON object", "payload")
        source, event_type = "the given payload", event_type.strip()
    provider = get_provider(endpoint.provider)
    subjects = (
        [t for t, _ in provider.split(event_type, payload, endpoint.settings or {})]
        if provider
        else []
    )
    results = command_store.dry_run(endpoint, event_type, payload, draft)
    # Nothing may stick: dry_run only reads, and this makes sure of it.
    db.session.rollback()
    return DryRun(source, event_type, list(zip(subjects, results, strict=False)))


def dry_run_choices(endpoint: Endpoint) -> list[Delivery]:
    """Recent accepted deliveries of ``endpoint`` to offer for a dry run, newest first."""
    return list(
        db.session.scalars(
            db.select(Delivery)
            .where(Delivery.endpoint_id == endpoint.id, Delivery.verdict == "accepted")
            .order_by(Delivery.received_at.desc(), Delivery.id.desc())
            .limit(DRY_RUN_CHOICES)
        )
    )


# --- deliveries -------------------------------------------------------------------------------


def find_delivery(endpoint: Endpoint | None, key: str) -> Delivery:
    """A delivery by ``Delivery.id``, or (on ``endpoint``) by the provider's delivery id;
    ``ManageError`` 404 when neither finds one."""
    delivery = db.session.get(Delivery, key)
    if delivery is not None and (endpoint is None or delivery.endpoint_id == endpoint.id):
        return delivery
    if endpoint is not None:
        delivery = db.session.scalars(
            db.select(Delivery).where(
                Delivery.endpoint_id == endpoint.id, Delivery.delivery_id == key
            )
        ).first()
        if delivery is not None:
            return delivery
    where = f" on endpoint {endpoint.id}" if endpoint is not None else ""
    raise ManageError(404, "not_found", f"there is no delivery {key!r}{where}", "delivery_id")


@dataclass(frozen=True)
class DeliveryFilters:
    """Deliveries log filters, from the query string; unknown values are ignored, a ``page``
    that is not a whole number from 1 to ``MAX_PAGE`` raises ``InputError``."""

    endpoint_id: str = ""
    verdict: str = ""
    status: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str], endpoint_id: str = "") -> DeliveryFilters:
        page = page_number(args)
        verdict = args.get("verdict", "")
        status = args.get("status", "")
        return cls(
            endpoint_id=endpoint_id or str(args.get("endpoint_id", "")),
            verdict=verdict if verdict in VERDICTS else "",
            status=status if status in STATUSES else "",
            page=page,
        )

    def as_query(self, **changes: Any) -> dict:
        """Query parameters (empty ones left out), e.g. for pager links."""
        values = {"verdict": self.verdict, "status": self.status, "page": self.page, **changes}
        if values.get("page") == 1:
            values.pop("page")
        return {k: v for k, v in values.items() if v}


def search_deliveries(
    filters: DeliveryFilters,
    per_page: int = DELIVERIES_PER_PAGE,
    offset: int | None = None,
    *,
    count_up_to: int | None = None,
):
    """``(deliveries, total)``: the page ``filters.page`` (or from ``offset``) of matching
    deliveries, newest first. ``count_up_to``: count no further than that (a total above it
    means "more"), so the cost does not grow with the endpoint's history."""
    query = db.select(Delivery)
    if filters.endpoint_id:
        query = query.where(Delivery.endpoint_id == filters.endpoint_id)
    if filters.verdict:
        query = query.where(Delivery.verdict == filters.verdict)
    if filters.status:
        query = query.where(Delivery.status == filters.status)
    counted = query.with_only_columns(Delivery.id)
    if count_up_to is not None:
        counted = counted.limit(count_up_to + 1)
    total = db.session.scalar(db.select(func.count()).select_from(counted.subquery()))
    deliveries = db.session.scalars(
        # The log shows no bodies: the raw view loads one when asked.
        query.options(defer(Delivery.body))
        .order_by(Delivery.received_at.desc(), Delivery.id.desc())
        .limit(per_page)
        .offset((filters.page - 1) * per_page if offset is None else offset)
    ).all()
    return list(deliveries), total or 0


def replay_refusal(delivery: Delivery) -> str | None:
    """Why ``delivery`` cannot be replayed (a sentence), or None when it can."""
    if delivery.verdict != "accepted":
        return f"{delivery.verdict} deliveries were never authentic, so they cannot be replayed"
    if delivery.outcome and delivery.outcome.startswith("answered at once"):
        return "a connection test (ping, challenge) has nothing to replay"
    return None


def replay_plan(delivery: Delivery) -> str:
    """What replaying ``delivery`` will do, in a sentence (the console asks before it does):
    an unfinished delivery is queued again, a processed one copied into a new delivery."""
    name = f"Replay delivery {delivery.delivery_id}"
    if delivery.status in ("received", "failed"):
        return (
            f"{name}: it has not finished processing, so it is queued again as it is "
            "(no new delivery)."
        )
    return (
        f"{name}: it will be processed again as a new delivery ({delivery.delivery_id}"
        "#replay-N) and its commands run again over the same cases, which may update them, "
        "reopen them, or send replies again."
    )


def replay(delivery: Delivery) -> tuple[Delivery, bool]:
    """Replay ``delivery`` through the same processing (``ingest.replay_delivery``); returns
    the delivery that will run and whether it is the same one, requeued. ``ManageError`` 409
    ``not_replayable`` saying why not."""
    refusal = replay_refusal(delivery)
    if refusal:
        why = f" (refused: {delivery.verdict_detail})" if delivery.verdict_detail else ""
        raise ManageError(409, "not_replayable", refusal + why)
    try:
        replayed = replay_delivery(delivery)
    except ValueError as exc:
        raise ManageError(409, "not_replayable", str(exc)) from None
    return replayed, replayed.id == delivery.id
