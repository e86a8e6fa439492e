"""Cases as the API shows and changes them (``/api/cases``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from app.api.schemas import Body, Out, Page, PageQuery, Query, Timestamp, whole
from app.api.schemas.events import Event
from app.cases.callbacks import MAX_NOTE, MAX_REFERENCE
from app.cases.models import CASE_STATUSES
from app.cases.queries import PAGE_SIZES, SORTS
from app.cases.service import ACTIONS
from app.inputs import MAX_PAGE


class Case(Out):
    id: int
    title: str
    status: Literal[CASE_STATUSES]  # type: ignore[valid-type]
    provider: str
    endpoint_id: str | None
    dedup_key: str | None
    severity: str | None
    source_url: str | None
    source: dict[str, Any] | None
    delivery_count: int
    created_at: Timestamp | None
    updated_at: Timestamp | None
    closed_at: Timestamp | None
    closed_reason: str | None
    assignee: str | None = Field(description="The assignee's email")
    tags: list[str]
    active_seconds: int | None
    parked_seconds: int | None
    resolved_at: Timestamp | None
    resolution_summary: str | None
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None

    @classmethod
    def of(cls, case: Any) -> Case:
        return cls.model_validate(case.to_dict())


class CaseFilterQuery(Query):
    """The case table's filters."""

    provider: str | None = Field(None, max_length=100)
    endpoint: str | None = Field(None, max_length=100, description="Endpoint id")
    assignee: str | None = Field(None, max_length=320, description="Email, or none")
    severity: str | None = Field(None, max_length=20)
    mine: bool | None = Field(None, description="1: assigned to the caller")
    q: str | None = Field(None, max_length=200, description="The title contains this")
    ack: Literal["yes", "no", ""] | None = None


class CaseListQuery(CaseFilterQuery, PageQuery):
    limit: whole(1, 100) | None = Field(None, description="Cases per page (default 25)")
    status: Literal[(*CASE_STATUSES, "")] | None = None  # type: ignore[valid-type]
    sort: Literal[(*SORTS, "")] | None = Field(  # type: ignore[valid-type]
        None, description="urgency (default)|updated|oldest|created"
    )
    page: whole(1, MAX_PAGE) | None = Field(None, description="1-based (or use after)")
    size: whole(1, 100) | None = Field(None, description=f"Page size, e.g. {PAGE_SIZES}")
    after: str | None = Field(
        None, max_length=9, pattern=r"^[0-9]+$", description="next_after of the previous page"
    )


class CaseList(Page):
    cases: list[Case]
    total: int = Field(description="Cases that match the filters")
    page: int
    per_page: int


class CaseSummary(Out):
    by_status: dict[str, int]
    by_provider: dict[str, int]
    by_severity: dict[str, int]
    oldest_open_age_seconds: int | None = Field(description="Of the oldest live case")
    total: int


class CaseDetail(Case):
    events: list[Event] = Field(description="Oldest first")


class HandleBody(Body):
    """A manual action; only what the action needs."""

    action: Literal[ACTIONS]  # type: ignore[valid-type]
    user: str | int | None = Field(None, description='"me", an email or a user id (assign)')
    severity: str | None = Field(None, max_length=20)
    tags: list[str] | None = Field(
        None, max_length=100, description="tag/untag (one string with commas is split too)"
    )
    reason: str | None = Field(None, max_length=20, description="close: manual (default)|auto")
    note: str | None = Field(None, max_length=MAX_NOTE)

    @field_validator("tags", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value


class Handled(Out):
    case: Case
    events: list[Event] = Field(description="The events written")
    changed: bool = Field(description="False when there was nothing to do")


class CallbackBody(Body):
    action: Literal["close", "reopen", "note", "comment"] | None = Field(
        None, description='Default "note" when a note is given'
    )
    note: str | None = Field(None, max_length=MAX_NOTE)
    comment: str | None = Field(None, max_length=MAX_NOTE, description="Same as note")
    reference: str | None = Field(
        None, max_length=MAX_REFERENCE, description="Your id for what you did (ticket, URL)"
    )


class CallbackResult(Out):
    case: Case
    changed: bool
    outcome: str
    events: list[Event]
