"""Writers: one interface for everything Casehook generates (SPEC C6).

The built-in writer composes from the case's own data, deterministically, with no network.
An LLM writer (OpenAI-compatible chat completions, ``app/outputs/llm.py``) can stand in front
of it and falls back to it on failure. Callers pass plain data (dicts), never ORM objects,
so writers can run anywhere and be tested alone. ``app/outputs/context.py`` builds
``context`` for a case (``case_context(case)``).

Shapes:

- ``branch``: ``{"id", "label", "description", "status", "reason", "parent_id",
  "notes": [{"text", "author", "created_at", "attachments": [{"filename", "text"}]}]}``
  (status: active, untried, dead_end, solved; optional extra keys are read when present:
  ``"fork_reason"``, ``"revived"`` (bool: a dead end brought back), ``"revival_evidence"``).
- ``context`` (a whole case): ``{"case": Case.to_dict(), "events": [CaseEvent.to_dict()...],
  "deliveries": [{"event_type", "summary", "received_at"}], "branches": [branch...],
  "active_branch_id", "handoffs": [{"intent", "priority", "notes", "waiting_on",
  "created_at", "claimed_by", "claimed_at"?, "next_step"?, "watch_out"?}]}``. Times are ISO
  8601 strings (or datetimes); every key may be missing or empty.

What the built-in writer promises: it states only facts found in the context, leaves a
sentence out when its fact is missing, and never writes placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

#: The three resolution outputs, in the order the console shows them.
KINDS = ("ticket_notes", "kb_article", "client_summary")
KIND_LABELS = {
    "ticket_notes": "Ticket notes",
    "kb_article": "Knowledge-base article",
    "client_summary": "Client summary",
}


@dataclass
class Written:
    """One document as written: Markdown ``content``, structured ``data`` (the KB article's,
    else None), who wrote it (``writer`` "builtin" or "llm", ``model`` for the LLM) and, when
    the LLM failed and the built-in writer stood in, why (``fallback_reason``)."""

    content: str
    data: dict | None = None
    writer: str = "builtin"
    model: str | None = None
    fallback_reason: str | None = None


class Writer(Protocol):
    #: "builtin" or "llm".
    name: str
    #: After each call: ``{"writer", "model", "fallback_reason"}`` of what actually wrote it
    #: (an LLM writer that fell back reports "builtin").
    last_written_by: dict

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
        "kb_data": {...}, "client_summary": md, "written_by": {kind: Written-as-dict}}``."""
        ...

    def document(self, kind: str, context: dict, resolution_summary: str) -> Written:
        """One resolution output (``kind`` in ``KINDS``)."""
        ...


# ---------------------------------------------------------------------------------------------
# Reading the facts


PROVIDER_NAMES = {
    "github": "GitHub",
    "gitlab": "GitLab",
    "jira": "Jira",
    "slack": "Slack",
    "sentry": "Sentry",
    "alertmanager": "Alertmanager",
    "pagerduty": "PagerDuty",
    "standard": "a Standard Webhooks sender",
}
#: Providers whose deliveries are alerts from monitoring rather than reports by people.
MONITORING_PROVIDERS = {"sentry", "alertmanager", "pagerduty"}
#: Lines of an attached file worth quoting in the ticket notes.
TELLING_LINE = re.compile(
    r"\b(error|fail(ed|ure)?|exception|fatal|denied|refused|timed? ?out|panic|expired?)\b",
    re.IGNORECASE,
)
#: Root branch labels that say nothing (the branch map's default is "Root").
GENERIC_ROOT_LABELS = {"root", "case", "start", "initial investigation", "investigation"}
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _when(value: Any) -> str | None:
    """``2026-11-20 09:00 UTC`` (None without a time)."""
    moment = _moment(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else None


def _day(value: Any) -> str | None:
    """``20 November 2026`` (for people outside the team)."""
    moment = _moment(value)
    return f"{moment.astimezone(UTC).day} {moment.astimezone(UTC):%B %Y}" if moment else None


def _minute_or_more(seconds: Any) -> int | None:
    """``seconds`` as a whole number when it is at least a minute; else None."""
    try:
        seconds = int(seconds or 0)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 60 else None


def _duration(seconds: Any) -> str | None:
    """``2 h 5 min``; None for no time at all."""
    seconds = _minute_or_more(seconds)
    if seconds is None:
        return None
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes and not days else "",
    ]
    return " ".join(p for p in parts if p)


def _plain_duration(seconds: Any) -> str | None:
    """``about 3 hours`` (for people outside the team)."""
    seconds = _minute_or_more(seconds)
    if seconds is None:
        return None
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size)
            return f"about {_count(count)} {unit}{'s' if count != 1 else ''}"
    return None


def _count(number: int) -> str:
    return NUMBER_WORDS[number] if 0 <= number < len(NUMBER_WORDS) else str(number)


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _one_line(value: Any, limit: int = 240) -> str:
    """The text on one line (Markdown list items must not break), cut at ``limit``."""
    text = re.sub(r"\s+", " ", _text(value))
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return text


def _sentence(value: Any, limit: int = 400) -> str:
    """One line ending with a full stop (or the punctuation it already has)."""
    text = _one_line(value, limit)
    if text and text[-1] not in ".!?…:":
        text += "."
    return text


def _clause(value: Any, limit: int = 400) -> str:
    """One line without a trailing full stop, for use inside a sentence."""
    return _one_line(value, limit).rstrip(".")


def _join(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _md_inline(value: Any) -> str:
    """Text from users or payloads, safe inside one Markdown line (no accidental headings,
    lists or HTML: the console renders Markdown without raw HTML anyway)."""
    return _one_line(value).replace("`", "'")


class Facts:
    """The context, read once: the pieces every document needs."""

    def __init__(self, context: dict, resolution_summary: str | None = None) -> None:
        context = context or {}
        self.case: dict = context.get("case") or {}
        self.events: list[dict] = list(context.get("events") or [])
        self.deliveries: list[dict] = list(context.get("deliveries") or [])
        self.branches: list[dict] = list(context.get("branches") or [])
        self.handoffs: list[dict] = list(context.get("handoffs") or [])
        self.active_branch_id = context.get("active_branch_id")
        if resolution_summary is None:
            resolution_summary = self.case.get("resolution_summary")
        self.resolution_summary = _text(resolution_summary)

    # The case -----------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return _one_line(self.case.get("title")) or ""

    @property
    def plain_title(self) -> str:
        """The title without a trailing provider reference such as ``(org/repo#12)``."""
        return re.sub(r"\s*\([^()]*#\d+\)\s*$", "", self.title).strip() or self.title

    @property
    def provider(self) -> str:
        return _text(self.case.get("provider"))

    @property
    def provider_name(self) -> str:
        return PROVIDER_NAMES.get(self.provider, self.provider)

    @property
    def tags(self) -> list[str]:
        return [_text(t) for t in self.case.get("tags") or [] if _text(t)]

    # Branches -----------------------------------------------------------------------------
    def ordered_branches(self) -> list[tuple[int, dict]]:
        """``(depth, branch)`` depth-first from the root(s), siblings in creation order."""
        by_parent: dict[Any, list[dict]] = {}
        ids = {b.get("id") for b in self.branches}
        for branch in self.branches:
            parent = branch.get("parent_id")
            by_parent.setdefault(parent if parent in ids else None, []).append(branch)
        ordered: list[tuple[int, dict]] = []

        def walk(parent: Any, depth: int) -> None:
            for branch in by_parent.get(parent, []):
                ordered.append((depth, branch))
                if branch.get("id") is not None and branch.get("id") != parent:
                    walk(branch.get("id"), depth + 1)

        walk(None, 0)
        return ordered

    @property
    def roots(self) -> list[dict]:
        ids = {b.get("id") for b in self.branches}
        return [b for b in self.branches if b.get("parent_id") not in ids]

    @property
    def hypotheses(self) -> list[dict]:
        """Every branch except the root(s), in tree order."""
        roots = {id(b) for b in self.roots}
        return [b for _, b in self.ordered_branches() if id(b) not in roots]

    @property
    def dead_ends(self) -> list[dict]:
        return [b for _, b in self.ordered_branches() if b.get("status") == "dead_end"]

    @property
    def solved(self) -> dict | None:
        return next((b for _, b in self.ordered_branches() if b.get("status") == "solved"), None)

    @property
    def untried(self) -> list[dict]:
        return [b for b in self.hypotheses if b.get("status") == "untried"]

    @property
    def active_branch(self) -> dict | None:
        return next((b for b in self.branches if b.get("id") == self.active_branch_id), None)

    def is_root(self, branch: dict) -> bool:
        return any(branch is root for root in self.roots)

    def children(self, branch: dict) -> list[dict]:
        return [b for b in self.branches if b.get("parent_id") == branch.get("id")]

    @property
    def note_count(self) -> int:
        return sum(len(b.get("notes") or []) for b in self.branches)

    # Deliveries and the timeline ------------------------------------------------------------
    def delivery_groups(self) -> list[dict]:
        """Deliveries grouped by (event type, summary): ``{"event_type", "summary", "count",
        "first", "last"}`` in order of first arrival (repeats of an alert read as one line)."""
        groups: dict[tuple[str, str], dict] = {}
        for delivery in self.deliveries:
            key = (_text(delivery.get("event_type")), _one_line(delivery.get("summary")))
            group = groups.setdefault(
                key,
                {
                    "event_type": key[0],
                    "summary": key[1],
                    "count": 0,
                    "first": delivery.get("received_at"),
                    "last": None,
                },
            )
            group["count"] += 1
            group["last"] = delivery.get("received_at")
        return list(groups.values())

    @property
    def event_types(self) -> list[str]:
        seen: list[str] = []
        for delivery in self.deliveries:
            event_type = _text(delivery.get("event_type"))
            if event_type and event_type not in seen:
                seen.append(event_type)
        return seen

    def events_of(self, *types: str) -> list[dict]:
        return [e for e in self.events if e.get("type") in types]

    @property
    def reopen_count(self) -> int:
        return len(self.events_of("case.reopened"))

    @property
    def resolved_event(self) -> dict | None:
        resolved = self.events_of("case.resolved")
        return resolved[-1] if resolved else None

    def handoff_list(self) -> list[dict]:
        """The handoffs from the context; without them, the park/escalate/claim events."""
        if self.handoffs:
            return self.handoffs
        found: list[dict] = []
        for event in self.events:
            payload = event.get("payload") or {}
            if event.get("type") in ("case.parked", "case.escalated"):
                found.append(
                    {
                        "intent": "park" if event["type"] == "case.parked" else "escalate",
                        "priority": payload.get("priority"),
                        "notes": payload.get("notes") or payload.get("why"),
                        "waiting_on": payload.get("waiting_on"),
                        "created_at": event.get("created_at"),
                        "created_by": event.get("actor"),
                        "claimed_by": None,
                    }
                )
            elif event.get("type") == "case.claimed" and found and not found[-1]["claimed_by"]:
                found[-1]["claimed_by"] = event.get("actor")
                found[-1]["claimed_at"] = event.get("created_at")
        return found

    @property
    def escalations(self) -> list[dict]:
        return [h for h in self.handoff_list() if h.get("intent") == "escalate"]

    @property
    def parkings(self) -> list[dict]:
        return [h for h in self.handoff_list() if h.get("intent") == "park"]


def _notes(branch: dict) -> list[dict]:
    return [n for n in branch.get("notes") or [] if _text(n.get("text")) or n.get("attachments")]


def _telling_line(text: Any) -> str | None:
    """The first line of an attachment that says something went wrong, if any."""
    for line in _text(text).splitlines():
        if TELLING_LINE.search(line):
            return _one_line(line, 160)
    return None


def _status_phrase(branch: dict, facts: Facts, at_resolution: bool = True) -> str | None:
    """What a branch concluded, as the end of a diagnostic step (None: say nothing)."""
    status, reason = branch.get("status"), _clause(branch.get("reason"))
    if status == "dead_end":
        return f"Dead end: {reason}." if reason else "Dead end."
    if status == "solved":
        return f"Solved: {reason}." if reason else "Solved."
    if branch.get("revived") and status in ("active", "untried"):
        evidence = _clause(branch.get("revival_evidence"))
        return (
            f"Revived after being set aside, on new evidence: {evidence}."
            if evidence
            else "Revived after being set aside."
        )
    if status == "untried":
        return "Not tried."
    if status == "active" and branch.get("id") == facts.active_branch_id and facts.solved is None:
        if not at_resolution:
            return "The active hypothesis."
        return "Still the active line of investigation when the case was resolved."
    return None


# ---------------------------------------------------------------------------------------------
# The built-in writer


class BuiltinWriter:
    """Composes from the facts given; never invents, never leaves a placeholder."""

    name = "builtin"

    def __init__(self) -> None:
        self.last_written_by: dict = {"writer": "builtin", "model": None, "fallback_reason": None}

    # Branch summaries -------------------------------------------------------------------------
    def branch_summary(self, branch: dict) -> str:
        """Markdown lines: what was tried (the latest notes), attachments, and the verdict.

        E.g. ``Tried: restarted the pods (alice, 2026-11-20 09:00 UTC)`` …
        ``Dead end: the pods were healthy``.
        """
        notes = _notes(branch)
        lines: list[str] = []
        if len(notes) > 5:
            lines.append(f"{len(notes)} notes; the latest five:")
        for note in notes[-5:]:
            text = _md_inline(note.get("text"))
            by = ", ".join(
                x for x in (_text(note.get("author")), _when(note.get("created_at")) or "") if x
            )
            if text:
                lines.append(f"- Tried: {text}" + (f" ({by})" if by else ""))
            for attachment in note.get("attachments") or []:
                name = _md_inline(attachment.get("filename"))
                if not name:
                    continue
                telling = _telling_line(attachment.get("text"))
                lines.append(
                    f"- Attached `{name}`" + (f": “{_md_inline(telling)}”" if telling else "")
                )
        status, reason = branch.get("status"), _clause(branch.get("reason"))
        if status in ("dead_end", "solved"):
            verdict = "Dead end" if status == "dead_end" else "Solved"
            lines.append(f"- **{verdict}**" + (f": {_md_inline(reason)}." if reason else "."))
        elif branch.get("revived"):
            evidence = _clause(branch.get("revival_evidence"))
            lines.append("- **Revived**" + (f": {_md_inline(evidence)}." if evidence else "."))
        if lines:
            return "\n".join(lines)
        if status == "untried":
            return "Not tried yet."
        return "Being worked; nothing noted yet."

    # Escalation assessment --------------------------------------------------------------------
    def assessment(self, context: dict) -> dict:
        """Likely cause, suggested steps and how sure that is, from the evidence recorded.

        Likely cause: the active branch (unless it is the root with nothing forked), else the
        open branch with the most notes, else the latest delivery's summary, else the title;
        always saying that it is unconfirmed. Steps: untried branches first, then what the
        notes suggest, then the dead ends to leave alone. Confidence grows with notes and
        dead ends (``low`` < 2 notes and no dead end; ``high`` with ≥ 5 notes and ≥ 2 dead
        ends, or a solved branch; else ``medium``).
        """
        facts = Facts(context)
        self.last_written_by = {"writer": "builtin", "model": None, "fallback_reason": None}
        notes, dead = facts.note_count, len(facts.dead_ends)
        if facts.solved is not None or (notes >= 5 and dead >= 2):
            confidence = "high"
        elif notes >= 2 or dead >= 1:
            confidence = "medium"
        else:
            confidence = "low"
        return {
            "likely_cause": self._likely_cause(facts),
            "suggested_steps": self._suggested_steps(facts),
            "confidence": confidence,
        }

    def _likely_cause(self, facts: Facts) -> str:
        if facts.solved is not None:
            reason = _clause(facts.solved.get("reason"))
            return f"{_clause(facts.solved.get('label'))} (marked solved" + (
                f": {reason})." if reason else ")."
            )
        open_branches = [b for b in facts.hypotheses if b.get("status") in ("active", "revived")]
        active = facts.active_branch
        candidate = None
        if active is not None and not (facts.is_root(active) and facts.hypotheses):
            candidate = active
        elif open_branches:
            # The open hypothesis with the most evidence; the first one forked on a tie.
            candidate = max(open_branches, key=lambda b: len(_notes(b)))
        if candidate is not None and not facts.is_root(candidate):
            count = len(_notes(candidate))
            evidence = (
                f"{_count(count)} note{'s' if count != 1 else ''} so far"
                if count
                else "no notes yet"
            )
            label = _clause(candidate.get("label"))
            description = _clause(candidate.get("description"))
            return (
                f"{label}"
                + (f" ({description})" if description else "")
                + f": the hypothesis being worked, not confirmed yet ({evidence})."
            )
        latest = next((d for d in reversed(facts.deliveries) if _text(d.get("summary"))), None)
        if latest is not None:
            return f"Not established yet. The latest report says: {_clause(latest.get('summary'))}."
        if facts.title:
            return f"Not established yet; the case reports: {_clause(facts.title)}."
        return "Not established yet: nothing has been recorded on the case."

    def _suggested_steps(self, facts: Facts) -> list[str]:
        steps: list[str] = []
        for branch in facts.untried:
            description = _clause(branch.get("description"))
            steps.append(
                f"Try “{_clause(branch.get('label'))}”"
                + (f": {description}." if description else ", not tried yet.")
            )
        for branch, sentence in _suggestions(facts):
            steps.append(f"From the notes on “{_clause(branch.get('label'))}”: {sentence}")
        for branch in facts.dead_ends:
            reason = _clause(branch.get("reason"))
            steps.append(
                f"Don't repeat “{_clause(branch.get('label'))}”: "
                + (f"ruled out ({reason})." if reason else "already ruled out.")
            )
        if not steps:
            if facts.hypotheses:
                steps.append(
                    "Every hypothesis recorded has been worked; fork new ones from "
                    "what the notes show."
                )
            else:
                steps.append("Fork the case into hypotheses and note what each one shows.")
        return steps

    # Claim briefing ---------------------------------------------------------------------------
    def briefing(self, context: dict, handoff: dict) -> str:
        """Markdown for whoever claims ``handoff``: where it stands, what was tried, dead ends
        to avoid, what it waits on / why it was escalated, and the next step."""
        facts = Facts(context)
        self.last_written_by = {"writer": "builtin", "model": None, "fallback_reason": None}
        handoff = handoff or {}
        intent = handoff.get("intent")
        parts: list[str] = []

        stands = []
        if facts.title:
            stands.append(f"**{_md_inline(facts.title)}**")
        status = _text(facts.case.get("status"))
        handed = _when(handoff.get("created_at"))
        by = _text(handoff.get("created_by"))
        if intent in ("park", "escalate"):
            verb = "parked" if intent == "park" else "escalated"
            priority = " with elevated priority" if handoff.get("priority") == "elevated" else ""
            stands.append(
                f"was {verb}{priority}"
                + (f" by {by}" if by else "")
                + (f" on {handed}" if handed else "")
            )
        elif status:
            stands.append(f"is {status}")
        lines = [" ".join(stands) + "." if stands else ""]
        active, worked = facts.active_branch, _duration(facts.case.get("active_seconds"))
        if active is not None and not facts.is_root(active):
            lines.append(f"The active hypothesis is **{_md_inline(active.get('label'))}**.")
        if worked:
            lines.append(f"It has been worked for {worked} so far.")
        if any(lines):
            parts.append("## Where it stands\n\n" + " ".join(x for x in lines if x))

        if intent == "escalate" and _text(handoff.get("notes")):
            parts.append("## Why it was escalated\n\n" + _text(handoff.get("notes")))
        elif intent == "park":
            waiting = _text(handoff.get("waiting_on")) or _text(handoff.get("notes"))
            if waiting:
                section = "## What it is waiting on\n\n" + waiting
                resume = _when(handoff.get("resume_at"))
                if resume:
                    section += f"\n\nPlanned to resume at {resume}."
                parts.append(section)

        tried = []
        for depth, branch in facts.ordered_branches():
            notes = _notes(branch)
            if facts.is_root(branch) and not notes:
                continue
            verdict = _status_phrase(branch, facts, at_resolution=False)
            latest = _md_inline(notes[-1].get("text")) if notes else ""
            label = "Initial investigation" if facts.is_root(branch) else branch.get("label")
            line = f"{'  ' * max(0, depth - 1)}- **{_md_inline(label)}**"
            details = [
                x
                for x in (
                    f"{len(notes)} note{'s' if len(notes) != 1 else ''}, latest: {latest}"
                    if latest
                    else "",
                    verdict or "",
                )
                if x
            ]
            tried.append(line + (" — " + " ".join(details) if details else ""))
        if tried:
            parts.append("## What was tried\n\n" + "\n".join(tried))

        if facts.dead_ends:
            avoid = [
                f"- **{_md_inline(b.get('label'))}**"
                + (f": {_md_inline(_clause(b.get('reason')))}." if _text(b.get("reason")) else "")
                for b in facts.dead_ends
            ]
            parts.append("## Dead ends: don't repeat these\n\n" + "\n".join(avoid))

        snapshot = handoff.get("snapshot") if isinstance(handoff.get("snapshot"), dict) else {}
        # A sentence to watch out for; the snapshot's list of dead ends is covered above.
        watch_out = handoff.get("watch_out")
        watch_out = _text(watch_out) if isinstance(watch_out, str) else ""
        if watch_out:
            parts.append("## Watch out\n\n" + watch_out)

        next_step = (
            _text(handoff.get("next_step"))
            or _text(snapshot.get("next_step"))
            or self._next_step(facts)
        )
        if next_step:
            parts.append("## Next step\n\n" + next_step)
        return "\n\n".join(parts)

    def _next_step(self, facts: Facts) -> str:
        untried = facts.untried
        if untried:
            return self._suggested_steps(facts)[0]
        suggestions = _suggestions(facts, limit=1)
        if suggestions:
            branch, sentence = suggestions[0]
            return f"From the notes on “{_clause(branch.get('label'))}”: {sentence}"
        if facts.solved is not None:
            return (
                f"Confirm the fix found on “{_clause(facts.solved.get('label'))}” and "
                "resolve the case."
            )
        active = facts.active_branch
        if active is not None and not facts.is_root(active):
            return f"Carry on with “{_clause(active.get('label'))}”, the active hypothesis."
        return "Fork the case into hypotheses and note what each one shows."

    # Resolution outputs -----------------------------------------------------------------------
    def outputs(self, context: dict, resolution_summary: str) -> dict[str, Any]:
        """The three resolution outputs (see ``Writer.outputs``)."""
        written = {kind: self.document(kind, context, resolution_summary) for kind in KINDS}
        return _as_outputs(written)

    def document(self, kind: str, context: dict, resolution_summary: str) -> Written:
        """One resolution output, composed from ``context`` (see the module docstring)."""
        facts = Facts(context, resolution_summary)
        self.last_written_by = {"writer": "builtin", "model": None, "fallback_reason": None}
        if kind == "ticket_notes":
            return Written(ticket_notes(facts))
        if kind == "kb_article":
            data = kb_data(facts)
            return Written(render_kb_article(data), data)
        if kind == "client_summary":
            return Written(client_summary(facts))
        raise ValueError(f"unknown output kind {kind!r}; one of {', '.join(KINDS)}")


def _as_outputs(written: dict[str, Written]) -> dict[str, Any]:
    return {
        "ticket_notes": written["ticket_notes"].content,
        "kb_article": written["kb_article"].content,
        "kb_data": written["kb_article"].data or {},
        "client_summary": written["client_summary"].content,
        "written_by": {
            kind: {"writer": w.writer, "model": w.model, "fallback_reason": w.fallback_reason}
            for kind, w in written.items()
        },
    }


SUGGESTION = re.compile(
    r"\b(next|should|need to|needs to|try|check|verify|confirm|ask|waiting on)\b", re.IGNORECASE
)


def _suggestions(facts: Facts, limit: int = 3) -> list[tuple[dict, str]]:
    """Sentences from open branches' latest notes that say what to do next."""
    found: list[tuple[dict, str]] = []
    for branch in facts.hypotheses + facts.roots:
        if branch.get("status") not in ("active", "revived"):
            continue
        for note in reversed(_notes(branch)):
            for sentence in re.split(r"(?<=[.!?])\s+|\n+", _text(note.get("text"))):
                sentence = _sentence(sentence.strip(" -*"), 200)
                if sentence and SUGGESTION.search(sentence):
                    found.append((branch, sentence))
                    break
            if len(found) >= limit:
                return found
    return found


# ---------------------------------------------------------------------------------------------
# Ticket notes


def ticket_notes(facts: Facts) -> str:
    """Problem, diagnostic steps, resolution and recommendations, as an engineer's notes."""
    sections = [f"# Ticket notes: {_md_inline(facts.title)}" if facts.title else "# Ticket notes"]
    sections.append("## Problem\n\n" + _problem(facts))
    sections.append("## Diagnostic steps\n\n" + _diagnostic_steps(facts))
    resolution = _resolution(facts)
    if resolution:
        sections.append("## Resolution\n\n" + resolution)
    recommendations = _recommendations(facts)
    if recommendations:
        sections.append("## Recommendations\n\n" + "\n".join(f"- {r}" for r in recommendations))
    return "\n\n".join(sections) + "\n"


def _problem(facts: Facts) -> str:
    case = facts.case
    parts = ["Reported"]
    if facts.provider_name:
        parts.append(f"through {facts.provider_name}")
    opened = _when(case.get("created_at"))
    if opened:
        parts.append(f"on {opened}")
    if case.get("id") is not None:
        parts.append(f"as case #{case['id']}")
    sentence = " ".join(parts) if len(parts) > 1 else ""
    if sentence and _text(case.get("severity")):
        sentence += f" (severity {_text(case.get('severity'))})"
    if facts.title:
        sentence += f": {_md_inline(facts.title)}" if sentence else _md_inline(facts.title)
    opening = [_sentence(sentence, 600)] if sentence else []
    url = _text(case.get("source_url"))
    if url.startswith(("https://", "http://")):
        opening.append(f"Source: <{url}>")
    text = "\n\n".join(opening)

    groups = facts.delivery_groups()
    if groups:
        lines = []
        shown = groups if len(groups) <= 10 else groups[:8] + groups[-2:]
        for index, group in enumerate(shown):
            if len(groups) > 10 and index == 8:
                lines.append(f"- … {len(groups) - 10} more kinds of delivery in between")
            when = _when(group["first"])
            label = f"`{group['event_type']}`" if group["event_type"] else "a delivery"
            line = "- " + (f"{when} " if when else "") + label
            if group["summary"]:
                line += f": {_md_inline(group['summary'])}"
            if group["count"] > 1:
                last = _when(group["last"])
                line += f" (x{group['count']}" + (f", last at {last})" if last else ")")
            lines.append(line)
        count = len(facts.deliveries)
        said = (
            "What the delivery said" if count == 1 else f"What the {_count(count)} deliveries said"
        )
        text += ("\n\n" if text else "") + f"{said}:\n\n" + "\n".join(lines)
    return text or "Nothing about the problem itself was recorded on the case."


def _diagnostic_steps(facts: Facts) -> str:
    steps: list[str] = []
    number = 0
    for depth, branch in facts.ordered_branches():
        notes = _notes(branch)
        is_root = facts.is_root(branch)
        children = facts.children(branch)
        if is_root and not notes and not children:
            continue
        number += 1
        if is_root:
            head = f"{number}. **Initial investigation**"
            label = _text(branch.get("label"))
            if label and label.lower() not in GENERIC_ROOT_LABELS and label != facts.title:
                head += f" ({_md_inline(branch.get('label'))})"
        else:
            head = f"{number}. **{_md_inline(branch.get('label'))}**"
            parent = next(
                (b for b in facts.branches if b.get("id") == branch.get("parent_id")), None
            )
            if depth > 1 and parent is not None:
                head += f", forked from “{_md_inline(parent.get('label'))}”"
            if _text(branch.get("description")):
                head += f": {_md_inline(_clause(branch.get('description')))}"
        body: list[str] = []
        for note in notes[:8]:
            text = _md_inline(note.get("text"))
            by = ", ".join(
                x for x in (_text(note.get("author")), _when(note.get("created_at")) or "") if x
            )
            if text:
                body.append(f"   - Tried: {text}" + (f" ({by})" if by else ""))
            for attachment in note.get("attachments") or []:
                name = _md_inline(attachment.get("filename"))
                if name:
                    telling = _telling_line(attachment.get("text"))
                    body.append(
                        f"   - Attached `{name}`"
                        + (f", which shows “{_md_inline(telling)}”" if telling else "")
                    )
        if len(notes) > 8:
            body.append(f"   - … and {len(notes) - 8} more notes")
        if children:
            fork_reason = next(
                (_clause(c.get("fork_reason")) for c in children if _text(c.get("fork_reason"))), ""
            )
            labels = _join([f"“{_md_inline(c.get('label'))}”" for c in children])
            body.append(
                f"   - Forked into {_count(len(children))} hypotheses: {labels}"
                + (f", because {fork_reason}." if fork_reason else ".")
            )
        verdict = None if is_root else _status_phrase(branch, facts)
        if verdict:
            body.append(f"   - Outcome: {_md_inline(verdict)}")
        steps.append("\n".join([head, *body]))

    handoffs = []
    for handoff in facts.handoff_list():
        when = _when(handoff.get("created_at"))
        who = _text(handoff.get("created_by"))
        if handoff.get("intent") == "escalate":
            line = "Escalated" + (
                " with elevated priority" if handoff.get("priority") == "elevated" else ""
            )
            why = _clause(handoff.get("notes"))
            detail = f": {_md_inline(why)}" if why else ""
        elif handoff.get("intent") == "park":
            line = "Parked"
            waiting = _clause(handoff.get("waiting_on")) or _clause(handoff.get("notes"))
            detail = f", waiting on {_md_inline(waiting)}" if waiting else ""
        else:
            continue
        line += (f" by {who}" if who else "") + (f" on {when}" if when else "") + detail + "."
        claimed = _text(handoff.get("claimed_by"))
        if claimed:
            claimed_at = _when(handoff.get("claimed_at"))
            line += f" Claimed by {claimed}" + (f" on {claimed_at}" if claimed_at else "") + "."
        handoffs.append(f"- {line}")

    if not steps and not handoffs:
        return "No diagnostic steps were recorded on this case."
    text = "\n".join(steps)
    if handoffs:
        text += ("\n\n" if text else "") + "Handoffs along the way:\n\n" + "\n".join(handoffs)
    return text


def _resolution(facts: Facts) -> str:
    parts = []
    if facts.resolution_summary:
        parts.append(facts.resolution_summary)
    solved = facts.solved
    if solved is not None:
        reason = _clause(solved.get("reason"))
        parts.append(
            f"The cause was confirmed on **{_md_inline(solved.get('label'))}**"
            + (f": {_md_inline(reason)}." if reason else ".")
        )
    resolved = facts.resolved_event
    when = _when((resolved or {}).get("created_at") or facts.case.get("resolved_at"))
    who = _text((resolved or {}).get("actor"))
    active = _duration(facts.case.get("active_seconds"))
    parked = _duration(facts.case.get("parked_seconds"))
    if when or who or active:
        sentence = "Resolved" + (f" by {who}" if who else "") + (f" on {when}" if when else "")
        if active:
            sentence += f" after {active} of active work"
            if parked:
                sentence += f" and {parked} parked"
        parts.append(sentence + ".")
    return "\n\n".join(parts)


def _recommendations(facts: Facts) -> list[str]:
    advice: list[str] = []
    dead = facts.dead_ends
    if dead:
        items = [
            f"“{_md_inline(b.get('label'))}”"
            + (f" ({_md_inline(_clause(b.get('reason')))})" if _text(b.get("reason")) else "")
            for b in dead
        ]
        advice.append(
            "Rule these out first next time; they were checked here and were not the "
            f"cause: {'; '.join(items)}."
        )
    if facts.solved is not None:
        advice.append(
            f"If the symptoms come back, start with “{_md_inline(facts.solved.get('label'))}”, "
            "which was the cause this time."
        )
    for handoff in facts.escalations:
        why = _clause(handoff.get("notes"))
        claimed = _text(handoff.get("claimed_by"))
        sentence = "This case needed an escalation" + (f" ({_md_inline(why)})" if why else "")
        if claimed:
            sentence += f"; {claimed} picked it up, so similar cases can go to them directly"
        advice.append(sentence + ".")
    if facts.reopen_count:
        times = "once" if facts.reopen_count == 1 else f"{_count(facts.reopen_count)} times"
        advice.append(
            f"The case was reopened {times} before this resolution; confirm the fix "
            "holds before closing it."
        )
    untried = facts.untried
    if untried:
        labels = _join([f"“{_md_inline(b.get('label'))}”" for b in untried])
        still = "it is still a candidate" if len(untried) == 1 else "they are still candidates"
        advice.append(
            f"Left untried: {labels}. Not needed this time, but {still} if the fix does not hold."
        )
    active = int(facts.case.get("active_seconds") or 0)
    parked = int(facts.case.get("parked_seconds") or 0)
    if parked > active and parked >= 3600:
        waits = [_clause(h.get("waiting_on")) for h in facts.parkings if _text(h.get("waiting_on"))]
        advice.append(
            f"The case spent longer parked ({_duration(parked)}) than worked "
            f"({_duration(active) or 'under a minute'})"
            + (f"; waiting on {_md_inline(_join(waits))} was the main delay." if waits else ".")
        )
    return advice


# ---------------------------------------------------------------------------------------------
# Knowledge-base article


def kb_data(facts: Facts) -> dict:
    """The KB article as data: ``{"title", "symptoms": [str], "root_cause": str,
    "resolution_steps": [str], "rule_out_first": [{"branch", "reason"}], "tags": [str]}``."""
    symptoms: list[str] = []
    if facts.title:
        symptoms.append(_sentence(facts.title))
    for group in facts.delivery_groups():
        if not group["summary"]:
            continue
        symptom = (
            f"{group['event_type']}: {_clause(group['summary'])}"
            if group["event_type"]
            else _clause(group["summary"])
        )
        if group["count"] > 1:
            symptom += f" (x{group['count']})"
        if symptom not in symptoms:
            symptoms.append(symptom)
        if len(symptoms) >= 8:
            break

    solved = facts.solved
    if solved is not None:
        reason = _clause(solved.get("reason"))
        root_cause = _clause(solved.get("label")) + (f": {reason}" if reason else "")
    else:
        root_cause = facts.resolution_summary

    steps: list[str] = []
    if solved is not None:
        for note in _notes(solved):
            text = _one_line(note.get("text"), 300)
            if text:
                steps.append(_sentence(text, 300))
    if facts.resolution_summary:
        summary = _sentence(facts.resolution_summary, 600)
        if summary not in steps:
            steps.append(summary)

    rule_out = [
        {"branch": _clause(b.get("label")), "reason": _clause(b.get("reason"))}
        for b in facts.dead_ends
    ]

    tags: list[str] = []
    for tag in [*facts.tags, facts.provider, *facts.event_types]:
        tag = _text(tag)
        if tag and tag not in tags:
            tags.append(tag)
    return {
        "title": facts.title,
        "symptoms": symptoms,
        "root_cause": root_cause,
        "resolution_steps": steps,
        "rule_out_first": rule_out,
        "tags": tags,
    }


def render_kb_article(data: dict) -> str:
    """Markdown for KB data (the built-in and LLM writers render it the same way)."""
    sections = [
        f"# {_md_inline(data.get('title'))}"
        if _text(data.get("title"))
        else "# Knowledge-base article"
    ]
    symptoms = [s for s in data.get("symptoms") or [] if _text(s)]
    if symptoms:
        sections.append("## Symptoms\n\n" + "\n".join(f"- {_md_inline(s)}" for s in symptoms))
    if _text(data.get("root_cause")):
        sections.append("## Root cause\n\n" + _text(data["root_cause"]))
    steps = [s for s in data.get("resolution_steps") or [] if _text(s)]
    if steps:
        sections.append(
            "## Resolution steps\n\n"
            + "\n".join(f"{i}. {_md_inline(s)}" for i, s in enumerate(steps, 1))
        )
    rule_out = [r for r in data.get("rule_out_first") or [] if _text(r.get("branch"))]
    if rule_out:
        sections.append(
            "## Rule out first\n\nThese were checked and were not the cause:\n\n"
            + "\n".join(
                f"- **{_md_inline(r['branch'])}**"
                + (f": {_md_inline(_clause(r.get('reason')))}." if _text(r.get("reason")) else "")
                for r in rule_out
            )
        )
    tags = [t for t in data.get("tags") or [] if _text(t)]
    if tags:
        sections.append("## Tags\n\n" + " ".join(f"`{_md_inline(t)}`" for t in tags))
    return "\n\n".join(sections) + "\n"


# ---------------------------------------------------------------------------------------------
# Client summary

#: Words a client should not have to read (the client summary leaves them out).
JARGON = (
    "branch",
    "dedup",
    "webhook",
    "delivery",
    "deliveries",
    "payload",
    "escalat",
    "hypothes",
    "case event",
    "dead end",
    "endpoint",
)


def client_summary(facts: Facts) -> str:
    """Two or three short paragraphs in plain language: what happened, what was done, and
    that it is resolved. No event types, no internal words (``JARGON``)."""
    paragraphs: list[str] = []

    def plain(value: Any) -> str:
        return _plain(value, facts.event_types)

    what = []
    day = _day(facts.case.get("created_at"))
    problem = plain(facts.plain_title)
    if facts.provider in MONITORING_PROVIDERS:
        opener = "our monitoring alerted us to a problem"
    else:
        opener = "a problem was reported to us"
    if problem:
        what.append(
            (f"On {day}, " if day else "")
            + (opener if day else opener[0].upper() + opener[1:])
            + f": {_clause(problem)}."
        )
    if facts.case.get("severity") == "critical":
        what.append("We treated it as urgent.")
    if what:
        paragraphs.append(" ".join(what))

    done = []
    tried = [b for b in facts.hypotheses if b.get("status") != "untried"]
    ruled_out = len(facts.dead_ends)
    if len(tried) > 1:
        sentence = f"Our team looked into {_count(len(tried))} possible causes"
        sentence += f" and ruled out {_count(ruled_out)} of them" if ruled_out else ""
        done.append(sentence + ".")
    elif facts.note_count:
        done.append("Our team investigated the problem.")
    if facts.solved is not None and plain(facts.solved.get("label")):
        done.append(f"We found the cause: {_clause(plain(facts.solved.get('label')))}.")
    if facts.escalations:
        done.append("Along the way we brought in a colleague with more specialised knowledge.")
    waits = [plain(h.get("waiting_on")) for h in facts.parkings if plain(h.get("waiting_on"))]
    if waits:
        done.append(f"The work paused for a while as we waited on {_clause(_join(waits))}.")
    summary = plain(facts.resolution_summary)
    if summary:
        done.append("What we did to fix it: " + _sentence(summary, 800))
    if done:
        paragraphs.append(" ".join(done))

    closing = []
    resolved = _day(facts.case.get("resolved_at") or (facts.resolved_event or {}).get("created_at"))
    took = None
    start = _moment(facts.case.get("created_at"))
    end = _moment(facts.case.get("resolved_at"))
    if start and end:
        took = _plain_duration((end - start).total_seconds())
    sentence = "The problem is now resolved"
    if resolved:
        sentence += f" (since {resolved}"
        sentence += f", {took} after it was first reported)" if took else ")"
    closing.append(sentence + ".")
    closing.append("If you notice it again, let us know and we will pick it straight back up.")
    paragraphs.append(" ".join(closing))
    return "\n\n".join(paragraphs) + "\n"


def _plain(value: Any, event_types: Iterable[str] = ()) -> str:
    """Text for the client: one line, no Markdown code marks, none of the case's event type
    names (``issues.opened``) that people sometimes paste into labels and summaries."""
    text = _one_line(value, 800).replace("`", "")
    for event_type in event_types:
        if "." in event_type:
            text = re.sub(rf"\s*\b{re.escape(event_type)}\b", "", text)
    return re.sub(r"\s{2,}", " ", text).strip()


# ---------------------------------------------------------------------------------------------


def get_writer() -> Writer:
    """The writer configured for this app: the LLM writer (falling back to the built-in one)
    when ``LLM_BASE_URL`` and ``LLM_MODEL`` are set (app config or environment), else the
    built-in writer. See ``app/outputs/llm.py``."""
    from app.outputs.llm import LlmWriter, llm_settings

    settings = llm_settings()
    if settings is None:
        return BuiltinWriter()
    return LlmWriter(**settings, fallback=BuiltinWriter())


def plain_words(text: str) -> Iterable[str]:
    """The jargon words found in ``text`` (for tests and the LLM writer's check)."""
    lowered = text.lower()
    return [word for word in JARGON if word in lowered]
