"""Commands: rules that say what a delivery does (SPEC §2 "command", §3 step 3, C2).

A command has a trigger (event type patterns with ``*`` wildcards), conditions over the
payload (``{path, op, value}`` with dotted paths), a priority (lower runs first), an action,
and optional templates for the case title and the timeline text. Built-in commands ship in
each provider module; dynamic ones are stored per endpoint (``command_store``) and override a
built-in of the same name. This module is pure: no database, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from app.errors import DomainError

#: Actions a command may take: ``comment`` posts the rendered ``reply_template`` to the
#: delivery's source (a ``replies.post`` task, app/replies); ``run_agent`` starts an agent run
#: (app/agents); ``forward`` sends the delivery's case events to a subscription (app/outbound).
ACTIONS = ("open_case", "update_case", "close_case", "forward", "ignore", "comment", "run_agent")
#: Actions the spec names that are not built yet, with what they wait for.
LATER_ACTIONS = {}
OPS = ("eq", "ne", "in", "contains", "exists", "matches")
_MISSING = object()

# Payloads are attacker-controlled and templates are user-written: sandboxed, and a missing
# path (at any depth) renders as an empty string instead of failing.
_templates = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


class CommandError(DomainError, ValueError):
    """A command definition is invalid; ``field`` names the part, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Condition:
    """``path`` (dotted, list indexes as numbers) compared with ``value`` by ``op``.

    Ops: ``eq``, ``ne``, ``in`` (value is a list), ``contains`` (payload value is a list or
    string), ``exists`` (value true/false, default true), ``matches`` (regex search).
    """

    path: str
    op: str
    value: Any = None

    def holds(self, payload: Any) -> bool:
        found = lookup(payload, self.path)
        if self.op == "exists":
            present = found is not _MISSING and found is not None
            return present == (True if self.value is None else bool(self.value))
        if found is _MISSING:
            return self.op == "ne"
        match self.op:
            case "eq":
                return found == self.value
            case "ne":
                return found != self.value
            case "in":
                return found in (self.value or ())
            case "contains":
                return isinstance(found, list | str) and self.value in found
            case "matches":
                return isinstance(found, str) and re.search(str(self.value), found) is not None
        raise CommandError("conditions", f"unknown op {self.op!r}")

    def describe(self) -> str:
        return (
            f"{self.path} {self.op} {self.value!r}"
            if self.op != "exists"
            else (f"{self.path} exists" if self.value in (None, True) else f"{self.path} is absent")
        )

    def to_dict(self) -> dict:
        return {"path": self.path, "op": self.op, "value": self.value}


@dataclass(frozen=True)
class Command:
    """A rule: when ``trigger`` matches the event type and every condition holds, run ``action``.

    ``title_template`` / ``timeline_template`` (Jinja2, sandboxed, payload keys as variables)
    replace the provider's case title / timeline line when they render non-empty;
    ``reply_template`` (the same) is what the ``comment`` action posts (Markdown).
    """

    name: str
    trigger: tuple[str, ...]
    action: str
    conditions: tuple[Condition, ...] = ()
    priority: int = 100
    description: str = ""
    aliases: tuple[str, ...] = ()
    title_template: str = ""
    timeline_template: str = ""
    reply_template: str = ""
    stop_after_match: bool = True
    enabled: bool = True
    builtin: bool = True
    extra: dict = field(default_factory=dict)
    #: ``run_agent`` only: the agent's name, the prompt (a template over the payload, sent
    #: on the agent's stdin), whether its output is replied to the source, and whether a
    #: person must approve each run first.
    agent: str = ""
    prompt_template: str = ""
    reply: bool = False
    requires_approval: bool = False

    def matches(self, event_type: str, payload: Any) -> bool:
        return self.explain(event_type, payload) is None

    def explain(self, event_type: str, payload: Any) -> str | None:
        """Why this command does not match (a sentence), or None when it does."""
        if not self.enabled:
            return "disabled"
        if not any(fnmatchcase(event_type, pattern) for pattern in self.trigger):
            return f"trigger {', '.join(self.trigger)} does not match {event_type}"
        for condition in self.conditions:
            if not condition.holds(payload):
                return f"condition failed: {condition.describe()}"
        return None

    def to_dict(self) -> dict:
        """The command as the API and config files show it."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "description": self.description,
            "trigger": list(self.trigger),
            "conditions": [c.to_dict() for c in self.conditions],
            "priority": self.priority,
            "action": self.action,
            "title_template": self.title_template,
            "timeline_template": self.timeline_template,
            "reply_template": self.reply_template,
            "stop_after_match": self.stop_after_match,
            "enabled": self.enabled,
            "builtin": self.builtin,
            **(
                {
                    "agent": self.agent,
                    "prompt_template": self.prompt_template,
                    "reply": self.reply,
                    "requires_approval": self.requires_approval,
                }
                if self.action == "run_agent"
                else {"subscription": self.extra.get("subscription")}
                if self.action == "forward"
                else {}
            ),
        }


def lookup(payload: Any, path: str) -> Any:
    """Follow a dotted ``path`` ("workflow_run.head_branch", "alerts.0.labels") into ``payload``.

    Returns the module's ``_MISSING`` sentinel when any step is absent.
    """
    current = payload
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def matching(commands: Iterable[Command], event_type: str, payload: Any) -> list[Command]:
    """The commands to run, lowest priority first, stopping after a stop-after-match command."""
    selected = []
    for command in sorted(commands, key=lambda c: (c.priority, c.name)):
        if command.matches(event_type, payload):
            selected.append(command)
            if command.stop_after_match:
                break
    return selected


def merge(builtin: Iterable[Command], dynamic: Iterable[Command]) -> list[Command]:
    """Built-in commands with the dynamic ones laid over them by name (dynamic wins)."""
    merged = {command.name: command for command in builtin}
    merged.update({command.name: command for command in dynamic})
    return sorted(merged.values(), key=lambda c: (c.priority, c.name))


def render(template: str, payload: Mapping[str, Any], event_type: str) -> str:
    """Render a command template over ``payload``; "" for an empty template.

    Variables: the payload's top-level keys, plus ``payload`` and ``event_type``. A missing
    path renders empty. A template that fails at render time (sandbox refusal, a filter on
    the wrong type) renders empty too: one bad payload must not stop the delivery.
    """
    if not template:
        return ""
    context = {**payload, "payload": payload, "event_type": event_type}
    try:
        return _templates.from_string(template).render(context).strip()
    except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError):
        return ""


def check_template(template: str, field_name: str) -> None:
    """Raise ``CommandError`` naming the line and the message if ``template`` does not parse."""
    try:
        _templates.parse(template)
    except TemplateSyntaxError as exc:
        raise CommandError(field_name, f"line {exc.lineno}: {exc.message}") from None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def build_command(data: Mapping[str, Any], *, builtin: bool = False) -> Command:
    """Validate a command definition (from a form, the API or a config file) into a Command.

    ``data``: ``{"name", "trigger": str|[str], "action", "conditions": [{"path", "op",
    "value"}], "priority": int, "aliases": [str], "description", "title_template",
    "timeline_template", "reply_template" (required by ``comment``), "stop_after_match": bool,
    "enabled": bool, "subscription": id (``forward`` only)}``. Raises
    ``CommandError`` for the first problem found, naming the field.
    """
    name = str(data.get("name") or "").strip()
    if not _NAME.match(name):
        raise CommandError(
            "name", "1-100 characters: letters, digits and . _ : - (no spaces), e.g. 'p1-alerts'"
        )
    trigger = _string_list(data.get("trigger"), "trigger")
    if not trigger:
        raise CommandError("trigger", "give at least one event type pattern, e.g. 'issues.*'")
    action = str(data.get("action") or "").strip()
    if action in LATER_ACTIONS:
        raise CommandError("action", f"{action!r} is not available yet: {LATER_ACTIONS[action]}")
    if action not in ACTIONS:
        raise CommandError("action", f"must be one of {', '.join(ACTIONS)}")
    try:
        priority = int(data.get("priority", 100))
    except (TypeError, ValueError):
        raise CommandError("priority", "must be a whole number (lower runs first)") from None
    extra = {}
    if action == "forward":
        # The subscription's existence is checked when the command runs (this module is pure).
        extra["subscription"] = str(data.get("subscription") or "").strip()
        if not extra["subscription"]:
            raise CommandError("subscription", "forward needs the id of a subscription")
    title_template = str(data.get("title_template") or "")
    timeline_template = str(data.get("timeline_template") or "")
    check_template(title_template, "title_template")
    check_template(timeline_template, "timeline_template")
    reply_template = str(data.get("reply_template") or "")
    check_template(reply_template, "reply_template")
    if action == "comment" and not reply_template.strip():
        raise CommandError(
            "reply_template",
            "the comment action posts this template: write what to say, e.g. "
            "'Thanks, {{ sender.login }}: we are on it.'",
        )
    agent_fields = _agent_fields(data) if action == "run_agent" else {}
    return Command(
        name=name,
        trigger=tuple(trigger),
        action=action,
        conditions=tuple(_conditions(data.get("conditions"))),
        priority=priority,
        description=str(data.get("description") or "").strip(),
        aliases=tuple(_string_list(data.get("aliases"), "aliases")),
        title_template=title_template,
        timeline_template=timeline_template,
        reply_template=reply_template,
        stop_after_match=_bool(data.get("stop_after_match", True), "stop_after_match"),
        enabled=_bool(data.get("enabled", True), "enabled"),
        builtin=builtin,
        **agent_fields,
        extra=extra,
    )


def _agent_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """``run_agent``'s fields, validated (whether the agent exists is checked when the
    command runs: this module has no database)."""
    agent = str(data.get("agent") or "").strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", agent):
        raise CommandError("agent", "name the agent to run, e.g. 'summarise'")
    prompt_template = str(data.get("prompt_template") or "")
    check_template(prompt_template, "prompt_template")
    return {
        "agent": agent,
        "prompt_template": prompt_template,
        "reply": _bool(data.get("reply", False), "reply"),
        "requires_approval": _bool(data.get("requires_approval", False), "requires_approval"),
    }


def _string_list(value: Any, field_name: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise CommandError(field_name, "must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _bool(value: Any, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "true",
        "on",
        "1",
        "yes",
        "false",
        "off",
        "0",
        "no",
        "",
    ):
        return value.lower() in ("true", "on", "1", "yes")
    raise CommandError(field_name, "must be true or false")


def _conditions(value: Any) -> list[Condition]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise CommandError("conditions", "must be a list of {path, op, value}")
    conditions = []
    for index, item in enumerate(value, 1):
        where = f"conditions[{index}]"
        if not isinstance(item, Mapping):
            raise CommandError(where, "must be an object with path, op and value")
        path, op = str(item.get("path") or "").strip(), str(item.get("op") or "").strip()
        if not path:
            raise CommandError(where, "path is required, e.g. 'issue.labels.0.name'")
        if op not in OPS:
            raise CommandError(where, f"op must be one of {', '.join(OPS)}")
        value_ = item.get("value")
        if op == "in" and not isinstance(value_, list):
            raise CommandError(where, "op 'in' needs a list value")
        if op == "matches":
            try:
                re.compile(str(value_))
            except re.error as exc:
                raise CommandError(where, f"not a valid regular expression: {exc}") from None
        conditions.append(Condition(path, op, value_))
    return conditions
