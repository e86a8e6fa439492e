"""What other features show on the case page, without the case view knowing them.

Each feature (branches, handoffs, outputs) registers a function ``case -> dict`` at import;
the case page merges every function's dict into its template context, and
``templates/cases/show.html`` includes each feature's partial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_panels: list[Callable[[Any], dict]] = []


def register_panel(provide: Callable[[Any], dict]) -> Callable[[Any], dict]:
    """Register ``provide(case) -> dict`` (usable as a decorator)."""
    _panels.append(provide)
    return provide


def panel_context(case: Any) -> dict:
    """Every registered feature's context for ``case``'s page, merged."""
    context: dict = {}
    for provide in _panels:
        context.update(provide(case))
    return context
