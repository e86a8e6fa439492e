"""Per-endpoint commands: built-in ones from the provider module merged with stored ones.

Plain functions over the session; callers commit (so a config sync is one transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from app import clock
from app.extensions import db
from app.webhooks.commands import Command, CommandError, build_command, merge, render
from app.webhooks.models import CommandRecord, Endpoint
from app.webhooks.providers import get_provider


def builtin_commands(endpoint: Endpoint) -> list[Command]:
    provider = get_provider(endpoint.provider)
    return provider.builtin_commands() if provider else []


def stored_commands(endpoint: Endpoint) -> list[CommandRecord]:
    return list(
        db.session.scalars(
            db.select(CommandRecord)
            .where(CommandRecord.endpoint_id == endpoint.id)
            .order_by(CommandRecord.name)
        )
    )


def to_command(record: CommandRecord) -> Command:
    """The stored definition as a Command (it was validated when saved)."""
    return build_command({**record.definition, "name": record.name})


def commands_for(endpoint: Endpoint) -> list[Command]:
    """Every command in force on ``endpoint``: built-ins overlaid by stored ones, by priority."""
    return merge(builtin_commands(endpoint), (to_command(r) for r in stored_commands(endpoint)))


def find_record(endpoint: Endpoint, name: str) -> CommandRecord | None:
    return db.session.scalars(
        db.select(CommandRecord).where(
            CommandRecord.endpoint_id == endpoint.id, CommandRecord.name == name
        )
    ).first()


def save_command(
    endpoint: Endpoint,
    data: Mapping[str, Any],
    *,
    source: str = "console",
    replacing: str | None = None,
) -> CommandRecord:
    """Validate ``data`` (see ``build_command``) and store it on ``endpoint``, uncommitted.

    ``replacing`` names the stored command being edited (it may be renamed). Raises
    ``CommandError`` when the definition is invalid or the name is taken by another stored
    command.
    """
    command = build_command(data)
    record = find_record(endpoint, replacing) if replacing else None
    clash = find_record(endpoint, command.name)
    if clash is not None and clash is not record:
        raise CommandError("name", f"{command.name!r} is already a command on this endpoint")
    if record is None:
        record = CommandRecord(endpoint_id=endpoint.id)
        db.session.add(record)
    definition = command.to_dict()
    del definition["name"], definition["builtin"]
    record.name, record.definition, record.source = command.name, definition, source
    record.updated_at = clock.now()
    return record


def set_enabled(endpoint: Endpoint, name: str, enabled: bool) -> CommandRecord:
    """Switch a command on or off for ``endpoint``, uncommitted.

    A built-in is switched off by storing an override that copies it, disabled. Raises
    ``CommandError`` when no command has that name.
    """
    record = find_record(endpoint, name)
    if record is None:
        builtin = next((c for c in builtin_commands(endpoint) if c.name == name), None)
        if builtin is None:
            raise CommandError("name", f"no command {name!r} on this endpoint")
        record = save_command(endpoint, replace(builtin, enabled=enabled).to_dict())
        return record
    record.definition = {**record.definition, "enabled": enabled}
    record.updated_at = clock.now()
    return record


def delete_command(endpoint: Endpoint, name: str) -> None:
    """Delete a stored command, uncommitted; a built-in it overrode comes back.

    Raises ``CommandError`` for a built-in (they can only be overridden or disabled) and for
    an unknown name.
    """
    record = find_record(endpoint, name)
    if record is None:
        if any(c.name == name for c in builtin_commands(endpoint)):
            raise CommandError(
                "name", f"{name!r} is built in: it cannot be deleted, only overridden or disabled"
            )
        raise CommandError("name", f"no command {name!r} on this endpoint")
    db.session.delete(record)


@dataclass(frozen=True)
class DryRunRow:
    """One command's verdict on a delivery: matched and would run, or why not."""

    command: Command
    matched: bool
    runs: bool
    reason: str
    title: str
    timeline: str


def dry_run(
    endpoint: Endpoint, event_type: str, payload: dict, draft: Command | None = None
) -> list[list[DryRunRow]]:
    """What each command would do with a delivery, changing nothing.

    Returns one list of rows per subject the provider splits the delivery into (one per
    alert for Alertmanager), each row a command in priority order. ``draft``: an unsaved
    command laid over the stored ones (by name), as if it were saved.
    """
    provider = get_provider(endpoint.provider)
    if provider is None:
        return []
    commands = commands_for(endpoint)
    if draft is not None:
        commands = merge(commands, [draft])
    results = []
    for subject_type, subject in provider.split(event_type, payload, endpoint.settings or {}):
        facts = provider.case_facts(subject_type, subject)
        rows, stopped = [], False
        for command in commands:
            reason = command.explain(subject_type, subject)
            matched = reason is None
            runs = matched and not stopped
            if matched and stopped:
                reason = "matches, but an earlier command stops after matching"
            title = render(command.title_template, subject, subject_type) or facts.title
            timeline = render(command.timeline_template, subject, subject_type) or facts.summary
            if command.action == "comment":  # what it would post to the source
                timeline = render(command.reply_template, subject, subject_type)
            rows.append(
                DryRunRow(
                    command, matched, runs, reason or f"runs: {command.action}", title, timeline
                )
            )
            stopped = stopped or (runs and command.stop_after_match)
        results.append(rows)
    return results
