"""Commands: rules that say what a delivery does (SPEC §2, "command"; §3 step 3).

A command has a trigger (event type patterns with ``*`` wildcards), conditions over the
payload (``{path, op, value}`` with dotted paths), a priority (lower runs first) and an
action. Built-in commands ship in each provider module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

ACTIONS = ("open_case", "update_case", "close_case", "ignore")
_MISSING = object()


@dataclass(frozen=True)
class Condition:
    """``path`` (dotted, list indexes as numbers) compared with ``value`` by ``op``.

    Ops: ``eq``, ``ne``, ``in`` (value is a list), ``contains`` (payload value is a list or
    string), ``exists`` (value true/false), ``matches`` (regular expression search).
    """

    path: str
    op: str
    value: Any = None

    def holds(self, payload: Any) -> bool:
        found = lookup(payload, self.path)
        if self.op == "exists":
            return (found is not _MISSING and found is not None) == bool(
                True if self.value is None else self.value
            )
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
        raise ValueError(f"unknown condition op {self.op!r}")


@dataclass(frozen=True)
class Command:
    """A rule: when ``trigger`` matches the event type and every condition holds, run ``action``.

    ``case_event`` names the timeline entry written by ``update_case`` (e.g. "comment added").
    """

    name: str
    trigger: tuple[str, ...]
    action: str
    conditions: tuple[Condition, ...] = ()
    priority: int = 100
    description: str = ""
    stop_after_match: bool = True
    enabled: bool = True
    builtin: bool = True
    extra: dict = field(default_factory=dict)

    def matches(self, event_type: str, payload: Any) -> bool:
        return (
            self.enabled
            and any(fnmatchcase(event_type, pattern) for pattern in self.trigger)
            and all(condition.holds(payload) for condition in self.conditions)
        )


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


def matching(commands: list[Command], event_type: str, payload: Any) -> list[Command]:
    """The commands to run, lowest priority first, stopping after a stop-after-match command."""
    selected = []
    for command in sorted(commands, key=lambda c: (c.priority, c.name)):
        if command.matches(event_type, payload):
            selected.append(command)
            if command.stop_after_match:
                break
    return selected
