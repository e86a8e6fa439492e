"""Writers: one interface for everything Casehook generates (SPEC C6), in a package of its own
so that branches, handoffs and outputs all use it without importing one another.

- ``Writer`` (the protocol) and ``Written`` (what every call returns: the text or data, and
  who wrote it); ``get_writer()`` gives the configured writer;
- ``builtin.py``: the built-in writer, composing Markdown templates (``templates/``) over
  typed facts (``facts.py``), deterministically, with no network;
- ``llm.py``: the LLM writer (OpenAI-compatible chat completions; ``LLM_BASE_URL``,
  ``LLM_MODEL``, ``LLM_API_KEY``, ``LLM_TIMEOUT_SECONDS``), which falls back to the built-in
  writer document by document;
- ``context.py``: ``case_context(case)``, the whole case as plain data; features add their
  part (branches, handoffs) with ``register_context``.

Writers take plain data (dicts), never ORM objects, so they run anywhere (a task, a test)
and may be slow: call them outside any transaction or row lock.

Shapes:

- ``branch``: ``{"id", "label", "description", "status", "reason", "parent_id",
  "notes": [{"text", "author", "created_at", "attachments": [{"filename", "text"}]}]}``
  (status: active, untried, dead_end, solved; optional: ``"fork_reason"``, ``"revived"``
  (bool: a dead end brought back), ``"revival_evidence"``).
- ``context`` (a whole case): ``{"case": Case.to_dict(), "events": [CaseEvent.to_dict()...],
  "deliveries": [{"event_type", "summary", "received_at"}], "incident": {"description"
  (the source's own text, Markdown), "facts": [{"label", "value"}]}, "branches": [branch...],
  "active_branch_id", "handoffs": [{"intent", "priority", "notes", "waiting_on",
  "created_at", "created_by", "claimed_by", "claimed_at"?, "next_step"?, "watch_out"?}]}``.
  Times are ISO 8601 strings (or datetimes); every key may be missing or empty.

What the built-in writer promises: it states only facts found in the context, leaves a
sentence out when its fact is missing, and never writes placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: The three resolution outputs, in the order the console shows them.
KINDS = ("ticket_notes", "kb_article", "client_summary")
KIND_LABELS = {
    "ticket_notes": "Ticket notes",
    "kb_article": "Knowledge-base article",
    "client_summary": "Client summary",
}


@dataclass(frozen=True)
class Written:
    """One piece of writing: Markdown ``text`` and/or structured ``data`` (the KB article's,
    an assessment's), who wrote it (``writer`` "builtin" or "llm", ``model`` for the LLM)
    and, when the LLM failed and the built-in writer stood in, why (``fallback_reason``)."""

    text: str = ""
    data: dict | None = None
    writer: str = "builtin"
    model: str | None = None
    fallback_reason: str | None = None

    @property
    def written_by(self) -> str:
        """``builtin`` or ``llm (model)``: who to credit, in one string (≤ 100 chars)."""
        return (f"{self.writer} ({self.model})" if self.model else self.writer)[:100]

    def by(self) -> dict:
        """``{"writer", "model", "fallback_reason"}``, for events and logs."""
        return {"writer": self.writer, "model": self.model, "fallback_reason": self.fallback_reason}

    def fell_back(self, reason: str) -> Written:
        """This writing, marked as the built-in writer's standing in for one that failed."""
        return Written(self.text, self.data, "builtin", None, reason)


class Writer(Protocol):
    """What every writer does. Each call returns a ``Written``; a writer that cannot write
    something raises ``NotImplementedError`` (callers then do without)."""

    #: "builtin" or "llm".
    name: str

    def branch_summary(self, branch: dict) -> Written:
        """What was tried on the branch and what it concluded (``text``: a few Markdown
        lines)."""
        ...

    def assessment(self, context: dict) -> Written:
        """For an escalation: ``data`` = ``{"likely_cause": str, "suggested_steps": [str],
        "confidence": "low"|"medium"|"high"}``."""
        ...

    def briefing(self, context: dict, handoff: dict) -> Written:
        """For whoever claims ``handoff``: where the case stands and what to do next
        (``text``: Markdown)."""
        ...

    def document(self, kind: str, context: dict, resolution_summary: str) -> Written:
        """One resolution output (``kind`` in ``KINDS``): ``text`` Markdown, ``data`` the KB
        article's structure (else None). Raises ValueError for another kind."""
        ...


def get_writer() -> Writer:
    """The writer configured for this app: the LLM writer (falling back to the built-in one)
    when ``LLM_BASE_URL`` and ``LLM_MODEL`` are set (app config or environment), else the
    built-in writer."""
    from app.writing.builtin import BuiltinWriter
    from app.writing.llm import LlmWriter, llm_settings

    settings = llm_settings()
    if settings is None:
        return BuiltinWriter()
    return LlmWriter(**settings, fallback=BuiltinWriter())


def write_outputs(writer: Writer, context: dict, resolution_summary: str) -> dict[str, Written]:
    """All three resolution outputs, ``{kind: Written}`` in ``KINDS`` order."""
    return {kind: writer.document(kind, context, resolution_summary) for kind in KINDS}


__all__ = ["KINDS", "KIND_LABELS", "Writer", "Written", "get_writer", "write_outputs"]
