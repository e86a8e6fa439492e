"""Writers: one interface for everything Casehook generates (SPEC C6).

The built-in writer composes from the case's own data, deterministically, with no network.
An LLM writer (OpenAI-compatible chat completions) can stand in front of it and falls back
to it on failure. Callers pass plain data (dicts), never ORM objects, so writers can run
anywhere and be tested alone.

Shapes:

- ``branch``: ``{"id", "label", "description", "status", "reason", "parent_id",
  "notes": [{"text", "author", "created_at", "attachments": [{"filename", "text"}]}]}``
- ``context`` (a whole case): ``{"case": Case.to_dict(), "events": [...], "deliveries":
  [{"event_type", "summary", "received_at"}], "branches": [branch...], "active_branch_id",
  "handoffs": [{"intent", "priority", "notes", "waiting_on", "created_at", "claimed_by"}]}``
"""

from __future__ import annotations

from typing import Any, Protocol


class Writer(Protocol):
    #: Recorded with what it wrote ("builtin", or the LLM model name).
    name: str

    def branch_summary(self, branch: dict) -> str:
        """What was tried on the branch and what it concluded (Markdown, a few lines)."""
        ...

    def assessment(self, context: dict) -> dict:
        """For an escalation: ``{"likely_cause": str, "suggested_steps": [str],
        "confidence": "low"|"medium"|"high"}``."""
        ...

    def briefing(self, context: dict, handoff: dict) -> str:
        """For whoever claims a handoff: where the case stands and what to do next (Markdown)."""
        ...

    def outputs(self, context: dict, resolution_summary: str) -> dict[str, Any]:
        """The three resolution outputs: ``{"ticket_notes": md, "kb_article": md,
        "kb_data": {...}, "client_summary": md}``."""
        ...


class BuiltinWriter:
    """Composes from the facts given; never invents. (Filled in by the outputs work.)"""

    name = "builtin"

    def branch_summary(self, branch: dict) -> str:
        notes = [n.get("text", "").strip() for n in branch.get("notes") or [] if n.get("text")]
        lines = [f"Tried: {note}" for note in notes[-5:]]
        if branch.get("status") in ("dead_end", "solved") and branch.get("reason"):
            verdict = "Dead end" if branch["status"] == "dead_end" else "Solved"
            lines.append(f"{verdict}: {branch['reason']}")
        return "\n".join(lines) or "Nothing tried yet."

    def assessment(self, context: dict) -> dict:
        raise NotImplementedError

    def briefing(self, context: dict, handoff: dict) -> str:
        raise NotImplementedError

    def outputs(self, context: dict, resolution_summary: str) -> dict[str, Any]:
        raise NotImplementedError


def get_writer() -> Writer:
    """The writer configured for this app (the built-in one until an LLM is configured)."""
    return BuiltinWriter()
