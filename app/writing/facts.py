"""The case as typed facts: what the writer context (plain dicts) says, read once.

``Facts.read(context, resolution_summary)`` turns the context shape documented in
``app/writing/__init__.py`` into dataclasses; missing keys become empty strings, empty lists
or None, so templates never test for a key. Derived facts (the branch tree, dead ends, the
handoffs along the way) are properties, computed from the data alone: no wording here
(the templates under ``app/writing/templates/`` say things).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from app.webhooks.providers import PROVIDERS
from app.writing.text import moment, one_line, text, when

#: How each provider is called, and those whose deliveries are alerts from monitoring rather
#: than reports by people: what the provider modules say (``Provider.display_name``,
#: ``Provider.monitoring``).
PROVIDER_NAMES = {name: p.display_name or name for name, p in PROVIDERS.items()}
MONITORING_PROVIDERS = {name for name, p in PROVIDERS.items() if p.monitoring}
#: Root branch labels that say nothing (the branch map's default is "Root").
GENERIC_ROOT_LABELS = {"root", "case", "start", "initial investigation", "investigation"}
#: Words in a note that suggest what to do next.
SUGGESTION = re.compile(
    r"\b(next|should|need to|needs to|try|check|verify|confirm|ask|waiting on)\b", re.IGNORECASE
)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class AttachmentFacts:
    filename: str
    #: The file's text (None for binary files).
    text: str | None


@dataclass(frozen=True)
class NoteFacts:
    text: str
    author: str
    created_at: datetime | None
    attachments: tuple[AttachmentFacts, ...] = ()

    @classmethod
    def read(cls, data: dict) -> NoteFacts:
        return cls(
            text(data.get("text")),
            text(data.get("author")),
            moment(data.get("created_at")),
            tuple(
                AttachmentFacts(text(a.get("filename")), a.get("text"))
                for a in data.get("attachments") or []
                if isinstance(a, dict)
            ),
        )

    @property
    def byline(self) -> str:
        """``alice@example.com, 2026-11-20 09:00 UTC`` (either part may be missing)."""
        return ", ".join(x for x in (self.author, when(self.created_at)) if x)


@dataclass(eq=False)
class BranchFacts:
    """One branch; ``depth``, ``parent`` and ``children`` are set by ``Facts``."""

    id: Any
    label: str
    description: str
    status: str
    reason: str
    parent_id: Any
    fork_reason: str
    revived: bool
    revival_evidence: str
    #: Notes with text or attachments, oldest first.
    notes: list[NoteFacts]
    #: Every note recorded, empty ones included (evidence counts them).
    note_count: int = 0
    depth: int = 0
    is_root: bool = False
    parent: BranchFacts | None = None
    children: list[BranchFacts] = field(default_factory=list)

    @classmethod
    def read(cls, data: dict) -> BranchFacts:
        notes = [NoteFacts.read(_dict(n)) for n in data.get("notes") or []]
        return cls(
            id=data.get("id"),
            label=text(data.get("label")),
            description=text(data.get("description")),
            status=text(data.get("status")),
            reason=text(data.get("reason")),
            parent_id=data.get("parent_id"),
            fork_reason=text(data.get("fork_reason")),
            revived=bool(data.get("revived")),
            revival_evidence=text(data.get("revival_evidence")),
            notes=[n for n in notes if n.text or n.attachments],
            note_count=len(notes),
        )

    @property
    def concluded(self) -> bool:
        return self.status in ("dead_end", "solved")

    @property
    def open(self) -> bool:
        return self.status in ("active", "revived")


@dataclass(frozen=True)
class DeliveryGroup:
    """Deliveries with the same event type and summary (repeats of an alert read as one)."""

    event_type: str
    summary: str
    count: int
    first: datetime | None
    last: datetime | None


@dataclass
class HandoffFacts:
    """A park or escalation, from the context's handoffs or from the case's events; also the
    handoff a briefing is for (then ``next_step`` and ``watch_out`` may be set)."""

    intent: str
    priority: str
    notes: str
    waiting_on: str
    created_at: datetime | None
    created_by: str
    claimed_by: str
    claimed_at: datetime | None
    resume_at: datetime | None = None
    next_step: str = ""
    watch_out: str = ""

    @classmethod
    def read(cls, data: dict) -> HandoffFacts:
        snapshot = _dict(data.get("snapshot"))
        watch_out = data.get("watch_out")
        return cls(
            intent=text(data.get("intent")),
            priority=text(data.get("priority")),
            notes=text(data.get("notes")),
            waiting_on=text(data.get("waiting_on")),
            created_at=moment(data.get("created_at")),
            created_by=text(data.get("created_by")),
            claimed_by=text(data.get("claimed_by")),
            claimed_at=moment(data.get("claimed_at")),
            resume_at=moment(data.get("resume_at")),
            next_step=text(data.get("next_step")) or text(snapshot.get("next_step")),
            # A sentence to watch out for (a snapshot's list of dead ends is said elsewhere).
            watch_out=text(watch_out) if isinstance(watch_out, str) else "",
        )

    @property
    def elevated(self) -> bool:
        return self.priority == "elevated"


@dataclass(frozen=True)
class CaseFacts:
    id: Any
    title: str
    provider: str
    severity: str
    status: str
    created_at: datetime | None
    resolved_at: datetime | None
    source_url: str
    tags: tuple[str, ...]
    active_seconds: int
    parked_seconds: int

    @classmethod
    def read(cls, data: dict) -> CaseFacts:
        return cls(
            id=data.get("id"),
            title=one_line(data.get("title")),
            provider=text(data.get("provider")),
            severity=text(data.get("severity")),
            status=text(data.get("status")),
            created_at=moment(data.get("created_at")),
            resolved_at=moment(data.get("resolved_at")),
            source_url=text(data.get("source_url")),
            tags=tuple(text(t) for t in data.get("tags") or [] if text(t)),
            active_seconds=int(data.get("active_seconds") or 0),
            parked_seconds=int(data.get("parked_seconds") or 0),
        )

    @property
    def plain_title(self) -> str:
        """The title without a trailing provider reference such as ``(org/repo#12)`` or a
        leading issue key (``OPS-12: ``, Jira's)."""
        title = re.sub(r"\s*\([^()]*#\d+\)\s*$", "", self.title).strip()
        return re.sub(r"^[A-Z][A-Z0-9]{1,9}-\d+:\s*", "", title) or self.title

    @property
    def provider_name(self) -> str:
        return PROVIDER_NAMES.get(self.provider, self.provider)

    @property
    def monitoring(self) -> bool:
        return self.provider in MONITORING_PROVIDERS


class Facts:
    """Everything a document may say about a case (see the module docstring)."""

    def __init__(self, context: dict | None, resolution_summary: str | None = None) -> None:
        context = _dict(context)
        case = _dict(context.get("case"))
        self.case = CaseFacts.read(case)
        self.events: list[dict] = [_dict(e) for e in context.get("events") or []]
        self.deliveries: list[dict] = [_dict(d) for d in context.get("deliveries") or []]
        self.branches = [BranchFacts.read(_dict(b)) for b in context.get("branches") or []]
        self._handoffs = [_dict(h) for h in context.get("handoffs") or []]
        self.active_branch_id = context.get("active_branch_id")
        if resolution_summary is None:
            resolution_summary = case.get("resolution_summary")
        self.resolution_summary = text(resolution_summary)
        incident = _dict(context.get("incident"))
        #: What the source itself said (an issue body, an alert's description), Markdown.
        self.source_description = text(incident.get("description"))
        self.ordered = self._tree()

    def _tree(self) -> list[BranchFacts]:
        """The branches depth first from the root(s), siblings in creation order, with
        ``depth``, ``parent``, ``children`` and ``is_root`` set. A branch whose parent is
        missing is a root; a branch in a cycle is left out."""
        ids = {b.id for b in self.branches}
        by_id = {b.id: b for b in self.branches}
        for branch in self.branches:
            branch.is_root = branch.parent_id not in ids
            branch.parent = None if branch.is_root else by_id[branch.parent_id]
            if branch.parent is not None:
                branch.parent.children.append(branch)
        ordered: list[BranchFacts] = []

        def walk(branches: list[BranchFacts], depth: int) -> None:
            for branch in branches:
                branch.depth = depth
                ordered.append(branch)
                if branch.id is not None and branch.children and branch not in ordered[:-1]:
                    walk(branch.children, depth + 1)

        walk([b for b in self.branches if b.is_root], 0)
        return ordered

    # The case -----------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.case.title

    # Branches -----------------------------------------------------------------------------
    @cached_property
    def roots(self) -> list[BranchFacts]:
        return [b for b in self.branches if b.is_root]

    @cached_property
    def hypotheses(self) -> list[BranchFacts]:
        """Every branch except the root(s), in tree order."""
        return [b for b in self.ordered if not b.is_root]

    @cached_property
    def dead_ends(self) -> list[BranchFacts]:
        return [b for b in self.ordered if b.status == "dead_end"]

    @cached_property
    def solved(self) -> BranchFacts | None:
        return next((b for b in self.ordered if b.status == "solved"), None)

    @cached_property
    def untried(self) -> list[BranchFacts]:
        return [b for b in self.hypotheses if b.status == "untried"]

    @cached_property
    def tried(self) -> list[BranchFacts]:
        """Hypotheses someone worked on (not untried)."""
        return [b for b in self.hypotheses if b.status != "untried"]

    @cached_property
    def ruled_out(self) -> list[BranchFacts]:
        """The tried hypotheses that were dead ends (a root marked so is no hypothesis)."""
        return [b for b in self.tried if b.status == "dead_end"]

    @cached_property
    def internal_labels(self) -> list[str]:
        """The team's names for things, which a client never reads: the hypotheses' labels
        of two words or more (one word, "database", is too common to take out of a
        sentence)."""
        return [b.label for b in self.hypotheses if len(b.label.split()) >= 2]

    @cached_property
    def active_branch(self) -> BranchFacts | None:
        return next((b for b in self.branches if b.id == self.active_branch_id), None)

    @property
    def active_hypothesis(self) -> BranchFacts | None:
        """The active branch unless it is the root."""
        active = self.active_branch
        return active if active is not None and not active.is_root else None

    @property
    def note_count(self) -> int:
        return sum(b.note_count for b in self.branches)

    def likely_cause(self) -> BranchFacts | None:
        """The hypothesis most likely to be the cause while none is solved: the active branch
        (unless it is the root with hypotheses forked), else the open hypothesis with the
        most notes (the first forked on a tie); None when there is none."""
        active = self.active_branch
        candidate = None
        if active is not None and not (active.is_root and self.hypotheses):
            candidate = active
        else:
            open_branches = [b for b in self.hypotheses if b.open]
            if open_branches:
                candidate = max(open_branches, key=lambda b: len(b.notes))
        return candidate if candidate is not None and not candidate.is_root else None

    def suggestions(self, limit: int = 3) -> list[tuple[BranchFacts, str]]:
        """``(branch, sentence)``: sentences from open branches' latest notes that say what
        to do next (one per note at most)."""
        from app.writing.text import sentence

        found: list[tuple[BranchFacts, str]] = []
        for branch in self.hypotheses + self.roots:
            if not branch.open:
                continue
            for note in reversed(branch.notes):
                for part in re.split(r"(?<=[.!?])\s+|\n+", note.text):
                    part = sentence(part.strip(" -*"), 200)
                    if part and SUGGESTION.search(part):
                        found.append((branch, part))
                        break
                if len(found) >= limit:
                    return found
        return found

    # Deliveries and the timeline ------------------------------------------------------------
    @cached_property
    def delivery_groups(self) -> list[DeliveryGroup]:
        """Deliveries grouped by (event type, summary), in order of first arrival."""
        groups: dict[tuple[str, str], dict] = {}
        for delivery in self.deliveries:
            key = (text(delivery.get("event_type")), one_line(delivery.get("summary")))
            group = groups.setdefault(key, {"count": 0, "first": delivery.get("received_at")})
            group["count"] += 1
            group["last"] = delivery.get("received_at")
        return [
            DeliveryGroup(key[0], key[1], g["count"], moment(g["first"]), moment(g["last"]))
            for key, g in groups.items()
        ]

    @cached_property
    def latest_report(self) -> str:
        """The summary of the latest delivery that has one ("" if none)."""
        return next(
            (text(d.get("summary")) for d in reversed(self.deliveries) if text(d.get("summary"))),
            "",
        )

    @cached_property
    def event_types(self) -> list[str]:
        seen: list[str] = []
        for delivery in self.deliveries:
            event_type = text(delivery.get("event_type"))
            if event_type and event_type not in seen:
                seen.append(event_type)
        return seen

    def events_of(self, *types: str) -> list[dict]:
        return [e for e in self.events if e.get("type") in types]

    @property
    def reopen_count(self) -> int:
        return len(self.events_of("case.reopened"))

    @property
    def resolved_event(self) -> dict:
        resolved = self.events_of("case.resolved")
        return resolved[-1] if resolved else {}

    @property
    def resolved_at(self) -> datetime | None:
        """When the case was resolved: the latest ``case.resolved`` event, else the case's."""
        return moment(self.resolved_event.get("created_at")) or self.case.resolved_at

    @property
    def resolved_event_at(self) -> datetime | None:
        return moment(self.resolved_event.get("created_at"))

    @property
    def resolved_by(self) -> str:
        return text(self.resolved_event.get("actor"))

    @cached_property
    def handoffs(self) -> list[HandoffFacts]:
        """The handoffs from the context; without them, the park/escalate/claim events."""
        if self._handoffs:
            return [HandoffFacts.read(h) for h in self._handoffs]
        found: list[HandoffFacts] = []
        for event in self.events:
            payload = _dict(event.get("payload"))
            if event.get("type") in ("case.parked", "case.escalated"):
                found.append(
                    HandoffFacts(
                        intent="park" if event["type"] == "case.parked" else "escalate",
                        priority=text(payload.get("priority")),
                        notes=text(payload.get("notes") or payload.get("why")),
                        waiting_on=text(payload.get("waiting_on")),
                        created_at=moment(event.get("created_at")),
                        created_by=text(event.get("actor")),
                        claimed_by="",
                        claimed_at=None,
                    )
                )
            elif event.get("type") == "case.claimed" and found and not found[-1].claimed_by:
                found[-1].claimed_by = text(event.get("actor"))
                found[-1].claimed_at = moment(event.get("created_at"))
        return found

    @property
    def escalations(self) -> list[HandoffFacts]:
        return [h for h in self.handoffs if h.intent == "escalate"]

    @property
    def parkings(self) -> list[HandoffFacts]:
        return [h for h in self.handoffs if h.intent == "park"]
