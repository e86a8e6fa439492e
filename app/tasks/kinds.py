"""The registry of task kinds: what runs a task of each kind, and its retry policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

#: Modules that declare task kinds, imported when the app starts (a worker must know every
#: kind before it takes a task). A feature with background work adds its module here.
KIND_MODULES: tuple[str, ...] = (
    "app.outputs.jobs",
    "app.branches.summaries",
    "app.handoffs.tasks",
    "app.replies.tasks",
    "app.agents.execute",
    "app.events.sync",
    "app.outbound.sender",
)


@dataclass(frozen=True)
class TaskKind:
    """How tasks of one kind run.

    ``retry``: seconds to wait before each retry after a failed attempt (so
    ``len(retry) + 1`` attempts in all), jittered by ±10%; ``timeout``: seconds an attempt
    may run before it is stopped and counted as ``timed_out``; ``concurrency``: how many of
    its tasks (per concurrency key) may run at once across every worker, None for no limit
    (a task created with its own ``concurrency_limit``, e.g. an agent run, uses that);
    tasks sharing a key start in order (priority, then creation) among those due.
    ``chain_seconds``: with a concurrency key, the worker that finishes a task runs the next
    due one of the same key at once, for up to this long, instead of queueing a wake-up
    behind everything else (a stream of messages to one receiver keeps its worker).
    """

    name: str
    handler: Callable[[Any], Any]
    retry: tuple[float, ...] = (10, 60, 300)
    timeout: float = 120
    concurrency: int | None = None
    chain_seconds: float = 0

    @property
    def max_attempts(self) -> int:
        return len(self.retry) + 1


_kinds: dict[str, TaskKind] = {}


class UnknownTaskKind(KeyError):
    """No module registered a task kind of this name."""


def task_kind(
    name: str,
    *,
    retry: Sequence[float] = (10, 60, 300),
    timeout: float = 120,
    concurrency: int | None = None,
    chain_seconds: float = 0,
) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Decorator registering ``handler(task) -> result`` as the task kind ``name``.

    The handler runs in a worker with an app context. Raise to fail the attempt (retried on
    ``retry``), ``TaskFailed`` to fail at once; the return value (JSON) is stored as
    ``task.result`` and committed together with whatever the handler added to the session.
    Call slow things (HTTP, LLM, subprocesses) *before* writing to the session, so no write
    lock is held while waiting.
    """

    def register(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _kinds[name] = TaskKind(name, handler, tuple(retry), timeout, concurrency, chain_seconds)
        return handler

    return register


def get_kind(name: str) -> TaskKind:
    """The registered kind ``name``; ``UnknownTaskKind`` if there is none."""
    try:
        return _kinds[name]
    except KeyError:
        raise UnknownTaskKind(name) from None


def load_kinds() -> None:
    """Import every module in ``KIND_MODULES`` so their kinds are registered."""
    for module in KIND_MODULES:
        import_module(module)
