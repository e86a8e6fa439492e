"""Config as code: endpoints and their commands (and agents: ``app/agents/config.py``)
declared in YAML files, synced into the DB.

Every ``*.yaml`` / ``*.yml`` file in ``CASEHOOK_CONFIG_DIR`` may declare::

    endpoints:
      - id: gh-main                 # stable: the URL is /webhooks/<provider>/<id>
        provider: github
        name: my-org/my-repo
        secret_env: GITHUB_WEBHOOK_SECRET   # secrets never live in the files
        enabled: true               # optional, default true
        settings:                   # optional, provider options
          reply:                    # optional: how cases reply to the source
            api_url: https://github.example.com/api/v3   # default: the public API
            token_env: GITHUB_REPLY_TOKEN                # the token, by env var only
        commands:                   # optional; see app/webhooks/commands.build_command
          - name: p1-issues
            trigger: issues.labeled
            conditions: [{path: label.name, op: eq, value: p1}]
            action: open_case
            priority: 5

A sync creates what the files declare, updates what differs, and removes config-owned
endpoints and commands the files no longer declare; running it again changes nothing.
Endpoints and commands made in the console are left alone. The files may also declare
``subscriptions:`` (outbound webhooks; see ``app/outbound/config.py``). A removed endpoint that has
deliveries is disabled instead of deleted, so its history stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.extensions import db
from app.webhooks import command_store, mentions, reply_settings
from app.webhooks.commands import CommandError, build_command
from app.webhooks.models import CommandRecord, Delivery, Endpoint
from app.webhooks.providers import PROVIDERS

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,25}$")
_LINE = "__line__"
ENDPOINT_KEYS = {"id", "provider", "name", "secret_env", "enabled", "settings", "commands"}


class ConfigError(Exception):
    """The config files are invalid; ``problems`` lists "file line N: what is wrong"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _LineLoader(yaml.SafeLoader):
    """Safe YAML, with each mapping's line number kept under ``__line__`` for messages."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[_LINE] = node.start_mark.line + 1
        return mapping


@dataclass
class DeclaredEndpoint:
    file: str
    line: int
    id: str
    provider: str
    name: str
    secret_env: str
    enabled: bool
    settings: dict
    commands: list[tuple[int, dict]] = field(default_factory=list)


def load_config(config_dir: Path) -> list[DeclaredEndpoint]:
    """Read and validate every YAML file in ``config_dir``.

    Raises ``ConfigError`` listing every problem, each with its file and line.
    """
    declared: list[DeclaredEndpoint] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    files = sorted([*config_dir.glob("*.yaml"), *config_dir.glob("*.yml")])
    for path in files:
        name = path.name
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{name} line {mark.line + 1}" if mark else name
            problems.append(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}")
            continue
        if not isinstance(document, dict) or not isinstance(document.get("endpoints", []), list):
            problems.append(f"{name}: expected a mapping with an 'endpoints' list")
            continue
        for item in document.get("endpoints", []):
            endpoint = _endpoint(name, item, problems)
            if endpoint is None:
                continue
            if endpoint.id in seen:
                problems.append(
                    f"{name} line {endpoint.line}: endpoint id {endpoint.id!r} is already "
                    f"declared in {seen[endpoint.id]}"
                )
                continue
            seen[endpoint.id] = f"{name} line {endpoint.line}"
            declared.append(endpoint)
    if problems:
        raise ConfigError(problems)
    return declared


def _endpoint(file: str, item: Any, problems: list[str]) -> DeclaredEndpoint | None:
    if not isinstance(item, dict):
        problems.append(f"{file}: each endpoint must be a mapping")
        return None
    line = item.get(_LINE, 0)
    where = f"{file} line {line}"
    before = len(problems)
    unknown = set(item) - ENDPOINT_KEYS - {_LINE}
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    endpoint_id = str(item.get("id") or "")
    if not _ID.match(endpoint_id):
        problems.append(f"{where}: id must be 3-26 letters, digits, '-' or '_' (it is the URL)")
    provider = str(item.get("provider") or "")
    if provider not in PROVIDERS:
        problems.append(f"{where}: provider must be one of {', '.join(sorted(PROVIDERS))}")
    secret_env = str(item.get("secret_env") or "")
    if not re.match(r"^[A-Z_][A-Z0-9_]*$", secret_env):
        problems.append(
            f"{where}: secret_env must name an environment variable (e.g. GITHUB_SECRET); "
            "secrets are never written in config files"
        )
    if not isinstance(item.get("enabled", True), bool):
        problems.append(f"{where}: enabled must be true or false")
    settings = item.get("settings") or {}
    if not isinstance(settings, dict):
        problems.append(f"{where}: settings must be a mapping")
        settings = {}
    try:
        mentions.check_settings(settings)
    except mentions.MentionSettingsError as exc:
        problems.append(f"{where}: settings.{exc}")
    if reply_settings.KEY in settings:
        # Replies: the API URL, the token by env var (never in the file), provider options.
        try:
            reply = reply_settings.clean(
                provider, _strip_lines(settings[reply_settings.KEY]), allow_token=False
            )
        except reply_settings.ReplySettingsError as exc:
            problems.append(f"{where}: settings.{exc}")
        else:
            settings = {**settings, reply_settings.KEY: reply}
    commands = []
    for index, command in enumerate(item.get("commands") or [], 1):
        command_line = command.get(_LINE, line) if isinstance(command, dict) else line
        data = {k: v for k, v in command.items() if k != _LINE} if isinstance(command, dict) else {}
        try:
            build_command(_strip_lines(data))
        except CommandError as exc:
            label = data.get("name") or f"#{index}"
            problems.append(f"{file} line {command_line}: command {label}: {exc}")
        commands.append((command_line, _strip_lines(data)))
    if len(problems) > before:
        return None
    return DeclaredEndpoint(
        file=file,
        line=line,
        id=endpoint_id,
        provider=provider,
        name=str(item.get("name") or endpoint_id),
        secret_env=secret_env,
        enabled=item.get("enabled", True),
        settings=_strip_lines(settings),
        commands=commands,
    )


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def sync(config_dir: Path, *, dry_run: bool = False) -> list[str]:
    """Make the database match the files in ``config_dir``; returns the changes made.

    One transaction: committed unless ``dry_run`` (then rolled back). Raises ``ConfigError``
    (nothing changed) when the files are invalid or an id belongs to a console endpoint.
    """
    from app.agents.config import load_agents, sync_agents

    declared = load_config(config_dir)
    agents, problems = load_agents(config_dir)  # the `agents:` lists (app/agents/config.py)
    if problems:
        raise ConfigError(problems)
    changes: list[str] = []
    try:
        agent_changes, problems = sync_agents(agents)
        if problems:
            raise ConfigError(problems)
        changes += agent_changes
        for wanted in declared:
            changes += _sync_endpoint(wanted)
        declared_ids = {d.id for d in declared}
        for endpoint in db.session.scalars(db.select(Endpoint).where(Endpoint.source == "config")):
            if endpoint.id not in declared_ids and (change := _remove_endpoint(endpoint)):
                changes.append(change)
        # Outbound subscriptions declared in the same files (app/outbound/config.py).
        from app.outbound.config import sync_subscriptions

        changes += sync_subscriptions(config_dir)
    except ConfigError:
        db.session.rollback()
        raise
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    return changes


def _sync_endpoint(wanted: DeclaredEndpoint) -> list[str]:
    endpoint = db.session.get(Endpoint, wanted.id)
    label = f"endpoint {wanted.id}"
    if endpoint is not None and endpoint.source != "config":
        raise ConfigError([f"{wanted.file} line {wanted.line}: id {wanted.id!r} belongs to an "
                           "endpoint made in the console; choose another id"])  # fmt: skip
    if endpoint is not None and endpoint.provider != wanted.provider:
        raise ConfigError([f"{wanted.file} line {wanted.line}: {label} is a {endpoint.provider} "
                           "endpoint; its provider cannot change (give it a new id)"])  # fmt: skip
    changes = []
    values = {"name": wanted.name, "secret_env": wanted.secret_env, "enabled": wanted.enabled,
              "settings": wanted.settings, "config_file": wanted.file}  # fmt: skip
    if endpoint is None:
        endpoint = Endpoint(id=wanted.id, provider=wanted.provider, source="config", **values)
        db.session.add(endpoint)
        db.session.flush()
        changes.append(f"create {label} ({wanted.provider}, {wanted.file})")
    else:
        differing = [key for key, value in values.items() if getattr(endpoint, key) != value]
        for key in differing:
            setattr(endpoint, key, values[key])
        if differing:
            changes.append(f"update {label}: {', '.join(differing)}")
    changes += _sync_commands(endpoint, wanted)
    return changes


def _sync_commands(endpoint: Endpoint, wanted: DeclaredEndpoint) -> list[str]:
    changes = []
    existing = {r.name: r for r in command_store.stored_commands(endpoint)}
    names = set()
    for line, data in wanted.commands:
        name = data.get("name")
        names.add(name)
        record = existing.get(name)
        where = f"command {endpoint.id}/{name}"
        if record is not None and record.source != "config":
            raise ConfigError([f"{wanted.file} line {line}: {where} was made in the console; "
                               "rename one of them"])  # fmt: skip
        before = dict(record.definition) if record else None
        saved = command_store.save_command(endpoint, data, source="config", replacing=name
                                           if record else None)  # fmt: skip
        if before is None:
            changes.append(f"create {where}")
        elif before != saved.definition:
            changes.append(f"update {where}")
    for name, record in existing.items():
        if record.source == "config" and name not in names:
            db.session.delete(record)
            changes.append(f"delete command {endpoint.id}/{name}")
    db.session.flush()
    return changes


def _remove_endpoint(endpoint: Endpoint) -> str | None:
    has_deliveries = db.session.scalar(
        db.select(Delivery.id).where(Delivery.endpoint_id == endpoint.id).limit(1)
    )
    if has_deliveries:
        if not endpoint.enabled:
            return None
        endpoint.enabled = False
        return (f"disable endpoint {endpoint.id}: no longer declared, but it has deliveries; "
                "delete it in the console to drop them")  # fmt: skip
    db.session.execute(db.delete(CommandRecord).where(CommandRecord.endpoint_id == endpoint.id))
    db.session.delete(endpoint)
    return f"delete endpoint {endpoint.id}"
