"""Handoffs (``/api/cases/<id>/handoffs``, ``/api/handoffs``) and the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator

from app.api.schemas import Body, Out, Query, Timestamp
from app.api.schemas.tasks import TaskState
from app.handoffs.models import INTENTS, PRIORITIES
from app.inputs import MAX_ID

Intent = Literal[INTENTS]  # type: ignore[valid-type]
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]


class HandoffBody(Body):
    intent: Intent = Field(description="park: waiting on someone; escalate: needs someone else")
    notes: str = Field(description="What you are waiting on (park) / why (escalate)")
    priority: Priority = "normal"
    waiting_on: str | None = None
    resume_at: datetime | None = Field(
        None, description="When to pick it up again (park); ISO 8601, UTC when no offset"
    )
    to_user: str | StrictInt | None = Field(
        None, description="Who should take it (escalate): an engineer's email or user id"
    )
    next_step: str | None = None

    @field_validator("resume_at", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # Not a number of seconds, which pydantic would read as a Unix time.
        if value is not None and not isinstance(value, str):
            raise ValueError("give an ISO 8601 date and time string, e.g. 2026-11-21T09:00:00Z")
        return value or None

    @field_validator("to_user", mode="before")
    @classmethod
    def _user_ref(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        is_id = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
        if not (is_id or isinstance(value, str)):
            raise ValueError("give a user's email or id")
        return value


class QueueQuery(Query):
    intent: Literal[(*INTENTS, "")] | None = Field(  # type: ignore[valid-type]
        None, description="Only parks or only escalations (empty: all)"
    )


class Handoff(Out):
    """``snapshot``: where the case stood when it was handed off; ``assessment``
    (escalations): ``{"likely_cause", "suggested_steps", "confidence"}`` or null;
    ``briefing`` (Markdown) is written for whoever claims it; the ``*_task`` fields are the
    tasks writing those (null: never asked for)."""

    id: int
    case_id: int
    intent: Intent
    priority: Priority
    notes: str
    waiting_on: str | None
    resume_at: Timestamp | None
    to_user: str | None = Field(description="Email")
    snapshot: dict[str, Any]
    assessment: dict[str, Any] | None
    created_by: str | None = Field(description="Email")
    created_at: Timestamp | None
    claimed_by: str | None = Field(description="Email")
    claimed_at: Timestamp | None
    briefing: str | None
    writer: str | None
    assessment_task: TaskState | None
    briefing_task: TaskState | None

    @classmethod
    def of(cls, handoff: Any) -> Handoff:
        return cls.model_validate(handoff.to_dict())


class CaseGlance(Out):
    id: int
    title: str
    status: str
    severity: str | None
    assignee: str | None = Field(description="Email")


class HandoffWithCase(Handoff):
    case: CaseGlance

    @classmethod
    def of(cls, handoff: Any) -> HandoffWithCase:
        case = handoff.case
        return cls.model_validate(
            {
                **handoff.to_dict(),
                "case": {
                    "id": case.id,
                    "title": case.title,
                    "status": case.status,
                    "severity": case.severity,
                    "assignee": case.assignee.email if case.assignee else None,
                },
            }
        )


class HandoffList(Out):
    handoffs: list[Handoff] = Field(description="Oldest first")
    pending_id: int | None = Field(description="The handoff waiting to be claimed, if any")


class Queue(Out):
    queue: list[HandoffWithCase] = Field(
        description="Waiting handoffs: elevated first, then oldest"
    )
