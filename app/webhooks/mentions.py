"""Mentions: commands people address to Casehook in a comment (``@casehook analyze the logs``).

A comment-like event (GitHub issue or review comment, GitLab note, Jira comment, Slack
``app_mention``: each provider's ``Provider.mention``) whose text has ``<prefix> <word>
[rest]`` selects the endpoint's command whose name or alias is ``<word>`` and whose
trigger and conditions match the event; ``<prefix>`` alone, or followed by a word that
names no command, selects the endpoint's ``default_command`` (then ``rest`` is everything
after the prefix). Templates see ``{{ mention.args }}`` (``rest``), ``{{ mention.text }}``
(the comment), ``{{ mention.author }}`` and ``{{ mention.command }}``.

Endpoint settings: ``command_prefix`` (default ``@casehook``), ``default_command`` (a
command name; none: a bare prefix does nothing), ``mention_users`` (a list of user names
trusted besides those the provider says belong to the project).

Who may trigger: a trusted author (the provider's word, or ``mention_users``) runs the
command; anyone else's mention of a ``run_agent`` command creates the run awaiting approval,
and of any other command is refused. Bots, and comments carrying Casehook's reply marker
(``Provider.reply_marker``), never trigger. Quoted lines (``> …``) are skipped, so replying
to a mention with a quote does not repeat it. This module is pure: no database, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.webhooks.commands import Command
from app.webhooks.providers.base import Mention

DEFAULT_PREFIX = "@casehook"
PREFIX_SETTING, DEFAULT_SETTING, USERS_SETTING = (
    "command_prefix",
    "default_command",
    "mention_users",
)
#: Longest rest of a mention kept for templates (characters).
MAX_ARGS = 2000
_PREFIX = re.compile(r"^\S{1,50}$")


class MentionSettingsError(ValueError):
    """An endpoint's mention settings are invalid; the message says which and why."""


def check_settings(settings: Mapping[str, Any]) -> None:
    """``MentionSettingsError`` unless the mention settings in ``settings`` are well formed:
    ``command_prefix`` one word of 1-50 characters, ``default_command`` a string,
    ``mention_users`` a list of strings."""
    prefix = settings.get(PREFIX_SETTING)
    if prefix is not None and not (isinstance(prefix, str) and _PREFIX.match(prefix)):
        raise MentionSettingsError(
            f"{PREFIX_SETTING} must be one word of 1-50 characters, e.g. {DEFAULT_PREFIX!r}"
        )
    default = settings.get(DEFAULT_SETTING)
    if default is not None and not isinstance(default, str):
        raise MentionSettingsError(f"{DEFAULT_SETTING} must be a command name")
    users = settings.get(USERS_SETTING)
    if users is not None and not (
        isinstance(users, list) and all(isinstance(u, str) and u for u in users)
    ):
        raise MentionSettingsError(f"{USERS_SETTING} must be a list of user names")


def parse(text: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str] | None:
    """The first ``<prefix> [word] [rest]`` in ``text`` (case-insensitive prefix, standing
    as a word of its own, outside quoted ``>`` lines): ``(word, rest of the line)``, word
    "" for a bare prefix; None when the prefix is not there."""
    pattern = re.compile(
        r"(?<![\w@./-])" + re.escape(prefix) + r"(?![\w-])[ \t:,]*(\S*)[ \t]*([^\r\n]*)",
        re.IGNORECASE,
    )
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        found = pattern.search(line)
        if found:
            return found[1], found[2].strip()
    return None


@dataclass(frozen=True)
class Addressed:
    """A mention that selected a command: the command, whether its author may run it
    without approval, and what templates see as ``mention``."""

    command: Command
    trusted: bool
    context: dict


def address(
    mention: Mention | None,
    settings: Mapping[str, Any],
    commands: Iterable[Command],
    event_type: str,
    payload: Any,
    marker: str = "",
) -> tuple[Addressed | None, str | None]:
    """The command a mention addresses, or why none: ``(Addressed, None)`` or ``(None,
    sentence)``; ``(None, None)`` when the event is not a mention at all (no prefix)."""
    if mention is None:
        return None, None
    if mention.is_bot:
        return None, f"mention ignored: {mention.author or 'the author'} is a bot"
    if marker and marker in mention.text:
        return None, "mention ignored: Casehook's own reply"
    if mention.addressed is not None:
        word, _, rest = mention.addressed.strip().partition(" ")
        parsed = (word, rest.strip())
    else:
        parsed = parse(mention.text, str(settings.get(PREFIX_SETTING) or DEFAULT_PREFIX))
    if parsed is None:
        return None, None
    word, rest = parsed
    candidates = [c for c in commands if c.matches(event_type, payload)]
    command = _named(candidates, word) if word else None
    if command is None:
        default = str(settings.get(DEFAULT_SETTING) or "")
        command = _named(candidates, default) if default else None
        rest = f"{word} {rest}".strip()
        if command is None:
            return None, (
                f"mention: no command named {word!r} for {event_type}"
                + ("" if default else " and no default_command set")
                if word
                else f"mention: no default_command for {event_type}"
            )
    users = settings.get(USERS_SETTING) or []
    trusted = mention.trusted or (bool(mention.author) and mention.author in users)
    context = {
        "text": mention.text,
        "args": rest[:MAX_ARGS],
        "author": mention.author,
        "command": command.name,
        "trusted": trusted,
    }
    return Addressed(command, trusted, context), None


def _named(commands: list[Command], word: str) -> Command | None:
    word = word.lower()
    return next(
        (c for c in commands if word == c.name.lower() or word in (a.lower() for a in c.aliases)),
        None,
    )


def needs_mention(command: Command, mention: Mention | None) -> bool:
    """Whether ``command`` runs on this event only when addressed: agent runs on comment
    events, so that an ordinary comment (or Casehook's own reply) never starts one."""
    return mention is not None and command.action == "run_agent"
