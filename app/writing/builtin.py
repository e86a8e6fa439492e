"""The built-in writer: Markdown templates (``app/writing/templates/``) over typed facts.

Templates are Jinja2 with autoescape off (they write Markdown, not HTML). Every value from
people or payloads goes through a filter that keeps it on one Markdown line without code
marks (``inline``) or, for whole paragraphs people wrote, in as written; the console turns
the Markdown into HTML with ``app.markdown.render_markdown`` (no raw HTML, nh3-cleaned).

A document template is a sequence of ``{% block %}``s, one per section (or paragraph): each
is rendered alone, empty ones are left out, and the rest are joined by a blank line. The
``paragraphs`` filter does the same inside a section. So a template never has to manage
blank lines around optional parts.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from app.writing import KINDS, Written, text
from app.writing.facts import GENERIC_ROOT_LABELS, BranchFacts, Facts, HandoffFacts, NoteFacts

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


def plain_words(markdown: str) -> list[str]:
    """The jargon words found in ``markdown`` (for tests and the LLM writer's check)."""
    lowered = markdown.lower()
    return [word for word in JARGON if word in lowered]


def internal_names(markdown: str, labels: list[str]) -> list[str]:
    """The team's internal names found in ``markdown``: the hypothesis ``labels``
    (``Facts.internal_labels``), emails and ticket ids (what ``text.plain`` takes out)."""
    found = [lb for lb in labels if re.search(rf"(?<!\w){re.escape(lb)}(?!\w)", markdown, re.I)]
    return found + text.EMAIL.findall(markdown) + text.TICKET_ID.findall(markdown)


def _paragraphs(parts: list[Any]) -> str:
    """The non-empty parts joined by a blank line (outer line breaks of each dropped)."""
    kept = [str(p).strip("\n") for p in parts if p]
    return "\n\n".join(p for p in kept if p)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("app.writing", "templates"),
        autoescape=False,  # Markdown out; HTML is made (and cleaned) where it is shown
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        text=text.text,
        inline=text.inline,
        clause=text.clause,
        sentence=text.sentence,
        when=text.when,
        day=text.day,
        duration=text.duration,
        plain_duration=text.plain_duration,
        count=text.count,
        join_and=text.join,
        affix=text.affix,
        quoted=text.quoted,
        blockquote=text.blockquote,
        telling_line=text.telling_line,
        plain=text.plain,
        paragraphs=_paragraphs,
    )
    env.tests["text"] = lambda value: bool(text.text(value))
    env.globals["generic_root_labels"] = GENERIC_ROOT_LABELS
    return env


def compose(name: str, **values: Any) -> str:
    """Render template ``name``: its blocks, each alone, the non-empty ones joined by a
    blank line (a template without blocks: the whole of it, outer line breaks dropped)."""
    template = environment().get_template(name)
    if not template.blocks:
        return template.render(**values).strip("\n")
    return _paragraphs([_block(template, block, values) for block in template.blocks])


def _block(template: Template, block: str, values: dict) -> str:
    context = template.new_context(values)
    return "".join(template.blocks[block](context))


def render_kb_article(data: dict) -> str:
    """Markdown for KB data (the built-in and LLM writers render it the same way)."""
    data = data if isinstance(data, dict) else {}
    rule_out = [r for r in data.get("rule_out_first") or [] if isinstance(r, dict)]
    clean = {
        "title": data.get("title"),
        "symptoms": list(data.get("symptoms") or []),
        "root_cause": data.get("root_cause"),
        "resolution_steps": list(data.get("resolution_steps") or []),
        "rule_out_first": [
            {"branch": r.get("branch"), "reason": r.get("reason")} for r in rule_out
        ],
        "tags": list(data.get("tags") or []),
    }
    return compose("kb_article.md.j2", data=clean) + "\n"


def kb_data(facts: Facts) -> dict:
    """The KB article as data: ``{"title", "symptoms": [str], "root_cause": str,
    "resolution_steps": [str], "rule_out_first": [{"branch", "reason"}], "tags": [str]}``.

    Symptoms: the title, then each kind of delivery (``event: summary (xN)``), at most
    eight. Root cause: the solved branch and its reason, else the resolution summary.
    Steps: the solved branch's notes, then the resolution summary.
    """
    symptoms: list[str] = [text.sentence(facts.title)] if facts.title else []
    for group in facts.delivery_groups:
        if not group.summary:
            continue
        symptom = text.affix(group.event_type, after=": ") + text.clause(group.summary)
        symptom += f" (x{group.count})" if group.count > 1 else ""
        if symptom not in symptoms:
            symptoms.append(symptom)
        if len(symptoms) >= 8:
            break
    solved = facts.solved
    if solved is not None:
        root_cause = text.clause(solved.label) + text.affix(text.clause(solved.reason), ": ")
    else:
        root_cause = facts.resolution_summary
    steps = [text.sentence(n.text, 300) for n in (solved.notes if solved else []) if n.text]
    summary = text.sentence(facts.resolution_summary, 600)
    if summary and summary not in steps:
        steps.append(summary)
    tags: list[str] = []
    for tag in [*facts.case.tags, facts.case.provider, *facts.event_types]:
        if tag and tag not in tags:
            tags.append(tag)
    return {
        "title": facts.title,
        "symptoms": symptoms,
        "root_cause": root_cause,
        "resolution_steps": steps,
        "rule_out_first": [
            {"branch": text.clause(b.label), "reason": text.clause(b.reason)}
            for b in facts.dead_ends
        ],
        "tags": tags,
    }


def confidence(facts: Facts) -> str:
    """How sure an assessment can be: ``high`` with a solved branch or ≥ 5 notes and ≥ 2
    dead ends, ``medium`` with ≥ 2 notes or a dead end, else ``low``."""
    notes, dead = facts.note_count, len(facts.dead_ends)
    if facts.solved is not None or (notes >= 5 and dead >= 2):
        return "high"
    if notes >= 2 or dead >= 1:
        return "medium"
    return "low"


class BuiltinWriter:
    """Composes from the facts given; never invents, never leaves a placeholder."""

    name = "builtin"

    def branch_summary(self, branch: dict) -> Written:
        """Markdown lines: what was tried (the latest five notes), attachments, the verdict.

        E.g. ``- Tried: restarted the pods (alice, 2026-11-20 09:00 UTC)`` …
        ``- **Dead end**: the pods were healthy.``
        """
        facts = BranchFacts.read(branch if isinstance(branch, dict) else {})
        return Written(compose("branch_summary.md.j2", branch=facts))

    def assessment(self, context: dict) -> Written:
        """``data``: likely cause, suggested steps and how sure that is (``confidence``);
        wording in ``templates/assessment.md.j2``."""
        facts = Facts(context)
        return Written(data=self._assessment(facts))

    def _assessment(self, facts: Facts) -> dict:
        template = environment().get_template("assessment.md.j2")
        values = {"facts": facts}
        return {
            "likely_cause": _block(template, "likely_cause", values).strip(),
            "suggested_steps": _block(template, "suggested_steps", values).splitlines(),
            "confidence": confidence(facts),
        }

    def briefing(self, context: dict, handoff: dict) -> Written:
        """Markdown for whoever claims ``handoff``: where it stands, what was tried, dead
        ends to avoid, what it waits on / why it was escalated, and the next step."""
        facts = Facts(context)
        steps = self._assessment(facts)["suggested_steps"]
        about = HandoffFacts.read(handoff if isinstance(handoff, dict) else {})
        return Written(compose("briefing.md.j2", facts=facts, handoff=about, suggested_steps=steps))

    def document(self, kind: str, context: dict, resolution_summary: str) -> Written:
        """One resolution output, composed from ``context`` (see ``app.writing``)."""
        facts = Facts(context, resolution_summary)
        if kind == "ticket_notes":
            return Written(compose("ticket_notes.md.j2", facts=facts) + "\n")
        if kind == "kb_article":
            data = kb_data(facts)
            return Written(render_kb_article(data), data)
        if kind == "client_summary":
            return Written(compose("client_summary.md.j2", facts=facts) + "\n")
        raise ValueError(f"unknown output kind {kind!r}; one of {', '.join(KINDS)}")


__all__ = [
    "JARGON", "BuiltinWriter", "NoteFacts", "compose", "internal_names", "kb_data", "plain_words",
]  # fmt: skip
