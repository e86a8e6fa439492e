"""Case event subscribers of the branch map (see ``app/events/record.py``)."""

from __future__ import annotations

from typing import Any

from app.branches import service
from app.events.record import subscribe


@subscribe("case.opened")
def give_root(case: Any, _event: Any) -> None:
    """Every case starts with its root branch, in the transaction that opens it, so that
    reading the case page never has to write."""
    service.ensure_root(case)
