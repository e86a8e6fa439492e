"""The background task behind an answer (a summary, a briefing, outputs being written)."""

from __future__ import annotations

from typing import Any

from app.api.schemas import Out


class TaskState(Out):
    """The newest task doing this work; ``last_error`` is its latest failure, if any."""

    id: str
    status: str
    attempts: int
    last_error: str | None

    @classmethod
    def of(cls, state: dict[str, Any] | None) -> TaskState | None:
        """From ``app.tasks.task_state``'s dict (None: no task was ever asked for)."""
        return None if state is None else cls.model_validate(state)
