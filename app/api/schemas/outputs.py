"""Resolution outputs (``/api/cases/<id>/resolve``, ``/api/cases/<id>/outputs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool

from app.api.schemas import Body, Out, Timestamp
from app.api.schemas.cases import Case
from app.api.schemas.tasks import TaskState
from app.outputs.models import OUTPUT_STATUSES

OutputStatus = Literal[OUTPUT_STATUSES]  # type: ignore[valid-type]


class ResolveBody(Body):
    summary: str = Field(description="What fixed it")


class OutputPatch(Body):
    """Edit (``content``) and/or decide (``status``); at least one of them."""

    content: str | None = Field(None, description="Markdown; the output becomes an edited draft")
    status: Literal["approved", "rejected"] | None = None


class RegenerateBody(Body):
    keep_edits: StrictBool = Field(False, description="Keep the edited Markdown")


class PushBody(Body):
    target: str = Field(description='"source" (a comment in its thread) or "subscription:<id>"')


class Output(Out):
    """``content`` is the Markdown people read, edit and approve; ``generated_content`` what
    the writer last wrote; ``data`` the KB article as structured data (else ``{}``)."""

    id: int
    case_id: int
    kind: str
    label: str
    status: OutputStatus
    content: str
    generated_content: str
    data: dict[str, Any]
    writer: str
    model: str | None
    edited: bool
    generated_at: Timestamp | None
    updated_at: Timestamp | None
    approved_by: str | None = Field(description="Email")
    approved_at: Timestamp | None
    pushed_to: str | None
    pushed_at: Timestamp | None

    @classmethod
    def of(cls, output: Any) -> Output:
        return cls.model_validate(output.to_dict())


class Resolving(Out):
    case: Case
    outputs: Literal["pending"] = Field(description="A task is writing them")


class Outputs(Out):
    status: Literal["pending", "ready", "failed", "none"]
    outputs: list[Output]
    detail: str | None = Field(None, description="Why writing failed (status failed)")
    task: TaskState | None = Field(description="The newest task writing them")


class Writing(Out):
    case_id: int
    outputs: Literal["pending"]


class Regenerating(Out):
    output: Output
    status: Literal["pending"]


class Pushed(Out):
    output: Output
    detail: str = Field(description="Where it went, for people")
