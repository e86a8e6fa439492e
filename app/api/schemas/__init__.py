"""The models of the JSON API, one module per resource (``schemas/cases.py`` for
``api/cases.py``); what several resources share is here.

``Body`` models read request bodies (unknown fields refused), ``Query`` models query strings
(unknown arguments ignored, as browsers and scripts add their own), ``Out`` models are
answers. See ``app/api/spec.py`` for how views use them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from app.inputs import MAX_ID, bounded_int

#: An ISO 8601 moment in UTC as the API writes it (``2026-01-02T03:04:05.123456+00:00``).
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def whole(minimum: int = 1, maximum: int = MAX_ID) -> Any:
    """An int from ``minimum`` to ``maximum`` read as ``inputs.bounded_int`` reads it (ASCII
    digits only, no floats or bools), refused with the same sentence as everywhere else
    ("page must be a whole number from 1 to 100000")."""

    def read(value: Any, info: ValidationInfo) -> int:
        return bounded_int(value, info.field_name or "value", minimum, maximum)

    schema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    return Annotated[int, BeforeValidator(read), WithJsonSchema(schema)]


#: A row id (1 to the largest 32-bit id).
Id = whole()


class Body(BaseModel):
    """A request body: a JSON object with only the fields the model names."""

    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    """Query arguments; arguments the model does not name are ignored."""

    model_config = ConfigDict(extra="ignore")


class Out(BaseModel):
    """An answer: exactly the fields the model names (a drift between code and schema is a
    bug the tests catch)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every refusal (4xx): what went wrong as a slug, a sentence, and the input at fault.
    Some carry more keys (the 409 ``illegal_transition`` adds the case's ``status`` and the
    statuses ``allowed`` from it)."""

    model_config = ConfigDict(extra="allow", title="Error")

    error: str = Field(description="What went wrong, as a snake_case slug")
    detail: str = Field(description="What went wrong and what to send instead, for people")
    field: str | None = Field(
        None, description="The input at fault (a dotted path into the body or a query argument)"
    )


# -- pagination ----------------------------------------------------------------------------
#
# Every list that can grow without bound is read the same way: ``limit`` items after the
# opaque cursor ``after`` (absent: from the start); the answer's ``next_after`` is the cursor
# for the next page, null when there is nothing more (for now). Lists with a count also
# answer ``total``. What the cursor is (an event id, an offset) is the resource's business.

Cursor = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_:.-]+$")]


class PageQuery(Query):
    """``limit`` and ``after``, shared by paged lists (each says its default ``limit``)."""

    limit: whole(1, 1000) | None = Field(None, description="At most this many items")
    after: Cursor | None = Field(
        None, description="The next_after of the previous page (absent: from the start)"
    )


class Page(Out):
    """Base of paged answers: the items (named after the resource) and ``next_after``."""

    next_after: str | None = Field(
        description="Pass as after= for the next page; null when there is nothing more"
    )


def offset_of(after: str | None) -> int:
    """The offset an offset cursor stands for (0 for None); 400 when it is not one."""
    from app.api.spec import InvalidInput

    if after is None:
        return 0
    if not (after.isascii() and after.isdigit()) or len(after) > 9:
        raise InvalidInput(
            f"after must be the next_after of a previous page: {after!r}", field="after"
        )
    return int(after)


def next_offset(offset: int, shown: int, total: int) -> str | None:
    """The cursor after ``shown`` items from ``offset`` out of ``total`` (None at the end)."""
    end = offset + shown
    return str(end) if shown and end < total else None
