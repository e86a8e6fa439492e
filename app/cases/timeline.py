"""The case timeline as people read it: one sentence per case event, newest first.

``event_sentence`` maps every event type (``app/events/schemas``) to a sentence from its
payload alone, so the same words serve the page and any later feed; ``event_text`` is the
Markdown the event carries (a note, a reply, evidence), rendered under the sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.webhooks.providers import get_provider
from app.writing import KIND_LABELS

#: Who did it when the event names nobody (no actor, no delivery): Casehook's own rules.
SYSTEM = "Casehook"


@dataclass(frozen=True)
class Entry:
    """One timeline line: the event, its sentence and the Markdown it carries."""

    event: Any
    sentence: str
    text: str


def timeline_entries(case: Any) -> list[Entry]:
    """``case.events`` newest first as ``Entry`` rows; the events a delivery caused are the
    source's doing (its provider's name: "GitHub")."""
    provider = get_provider(case.provider or "")
    source = (provider.display_name or provider.name) if provider else ""
    events = sorted(case.events, key=lambda e: (e.seq or 0, e.created_at, e.id), reverse=True)
    return [
        Entry(
            event,
            event_sentence(
                event.type,
                event.payload or {},
                event.actor or ((source or "The source") if event.delivery_pk else ""),
            ),
            event_text(event.type, event.payload or {}),
        )
        for event in events
    ]


def event_sentence(type_: str, payload: Mapping[str, Any], actor: str | None = None) -> str:
    """A sentence saying what the event ``type_`` with ``payload`` did; ``actor`` is who did
    it (an email, a provider's name; empty: Casehook). Unknown types fall back to their
    summary, then to the type itself."""
    p = payload if isinstance(payload, Mapping) else {}
    who = actor or SYSTEM
    say = _SENTENCES.get(type_)
    sentence = say(who, p) if say else ""
    return sentence or (f"{who}: {_s(p, 'summary')}" if _s(p, "summary") else f"{who}: {type_}")


def event_text(type_: str, payload: Mapping[str, Any]) -> str:
    """The Markdown an event carries for people to read ("" when none): a note, a reply's
    text, a revival's evidence, a note's excerpt, the resolution summary."""
    p = payload if isinstance(payload, Mapping) else {}
    if type_ == "case.replied":
        return _s(p, "text")
    if type_ == "branch.revived":
        return _s(p, "evidence")
    if type_ == "note.added":
        summary, branch = _s(p, "summary"), _s(p, "branch")
        return summary.removeprefix(f"Note on {branch!r}: ") if branch else summary
    if type_ == "case.resolved" and not _s(p, "note"):
        return _s(p, "summary")
    return _s(p, "note")


def _s(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return value.strip() if isinstance(value, str) else ""


def _q(label: str) -> str:
    return f"'{label}'" if label else "a branch"


def _reason(text: str, sep: str = ": ") -> str:
    return f"{sep}{text}" if text else ""


def _kind(p: Mapping[str, Any]) -> str:
    kind = _s(p, "kind")
    return KIND_LABELS.get(kind, kind.replace("_", " ") or "output").lower()


def _opened(who: str, p: Mapping[str, Any]) -> str:
    said = _s(p, "summary") or _s(p, "title")
    return f"{who} opened the case" + _reason(said)


def _updated(who: str, p: Mapping[str, Any]) -> str:
    said = _s(p, "summary")
    if said:
        return f"{who}: {said}"
    return f"{who} sent {_s(p, 'event_type') or 'an update'}"


def _assigned(who: str, p: Mapping[str, Any]) -> str:
    assignee = _s(p, "assignee")
    if not assignee:
        return f"{who} unassigned the case"
    return f"{who} took the case" if assignee == who else f"{who} assigned the case to {assignee}"


def _callback(who: str, p: Mapping[str, Any]) -> str:
    # The actor names the callback ("callback (endpoint)"); the event is its note.
    done = {"close": "closed the case and ", "reopen": "reopened the case and "}
    return f"{who} {done.get(_s(p, 'action'), '')}added a note"


def _claimed(who: str, p: Mapping[str, Any]) -> str:
    noun = "escalation" if _s(p, "intent") == "escalate" else "parked case"
    return f"{who} claimed the {noun}; the case is open again"


def _closed(who: str, p: Mapping[str, Any]) -> str:
    reason = _s(p, "reason")
    if _s(p, "rule") == "inactivity":
        return f"{who} closed the case after {_hours(p)} without activity"
    if reason == "auto" and _s(p, "summary"):
        return f"{who} closed the case: {_s(p, 'summary')}"
    how = {"callback": " through a callback", "auto": " (the source closed it)"}
    return f"{who} closed the case{how.get(reason, '')}"


def _hours(p: Mapping[str, Any]) -> str:
    hours = p.get("hours")
    return f"{hours:g} h" if isinstance(hours, int | float) else "a while"


def _handoff(verb: str, prefix: str) -> Callable[[str, Mapping[str, Any]], str]:
    def say(who: str, p: Mapping[str, Any]) -> str:
        if _s(p, "rule") == "inactivity":
            return f"{who} {verb} the case after {_hours(p)} without activity"
        summary = _s(p, "summary")
        # Handoff summaries read "Parked, waiting on X: notes" / "Escalated to Y (elevated): …".
        rest = summary.removeprefix(prefix) if summary.startswith(prefix) else ""
        return f"{who} {verb} the case{rest}"

    return say


def _moved(verb: str) -> Callable[[str, Mapping[str, Any]], str]:
    def say(who: str, p: Mapping[str, Any]) -> str:
        was = _s(p, "from")
        return f"{who} {verb}" + (f" (it was {was})" if was else "")

    return say


def _replied(who: str, p: Mapping[str, Any]) -> str:
    if _s(p, "outcome") == "posted":
        return f"{who} replied to the source"
    status = p.get("status_code")
    code = f" ({status})" if isinstance(status, int) and not isinstance(status, bool) else ""
    return f"A reply to the source failed{code}" + _reason(_s(p, "error"))


def _resolved(who: str, p: Mapping[str, Any]) -> str:
    return f"{who} resolved the case"


def _severity(who: str, p: Mapping[str, Any]) -> str:
    return f"{who} changed the severity from {_s(p, 'from') or '?'} to {_s(p, 'to') or '?'}"


def _tagged(who: str, p: Mapping[str, Any]) -> str:
    def tags(key: str) -> list[str]:
        value = p.get(key)
        return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []

    added, removed = tags("added"), tags("removed")
    parts = [f"tagged the case {', '.join(added)}"] * bool(added)
    parts += [f"removed the tag{'s' * (len(removed) > 1)} {', '.join(removed)}"] * bool(removed)
    return f"{who} " + (" and ".join(parts) or "left the tags as they were")


def _note(who: str, p: Mapping[str, Any]) -> str:
    files = p.get("attachments") if isinstance(p.get("attachments"), list) else []
    attached = f", with {len(files)} attachment{'s' * (len(files) != 1)}" if files else ""
    return f"{who} added a note on {_q(_s(p, 'branch'))}{attached}"


def _forked(who: str, p: Mapping[str, Any]) -> str:
    children = p.get("children") if isinstance(p.get("children"), list) else []
    labels = [
        _q(c.get("label") if isinstance(c, Mapping) else c)
        for c in children
        if isinstance(c, str) or (isinstance(c, Mapping) and isinstance(c.get("label"), str))
    ]
    into = f" into {' and '.join(labels)}" if labels else " into hypotheses"
    return f"{who} forked {_q(_s(p, 'branch'))}{into}" + _reason(_s(p, "reason"))


def _revived(who: str, p: Mapping[str, Any]) -> str:
    came = _s(p, "evidence_from")
    return f"{who} revived {_q(_s(p, 'branch'))}" + (
        f" on evidence from {_q(came)}" if came else " on new evidence"
    )


def _branch_status(who: str, p: Mapping[str, Any]) -> str:
    to = _s(p, "to")
    verdict = {"dead_end": "a dead end", "solved": "solved"}.get(to, to.replace("_", " "))
    return f"{who} marked {_q(_s(p, 'branch'))} {verdict}" + _reason(_s(p, "reason"))


def _switched(who: str, p: Mapping[str, Any]) -> str:
    was = _s(p, "from")
    return f"{who} switched to {_q(_s(p, 'branch'))}" + (f" from {_q(was)}" if was else "")


def _output(verb: str) -> Callable[[str, Mapping[str, Any]], str]:
    def say(who: str, p: Mapping[str, Any]) -> str:
        if verb == "wrote" and p.get("regenerated") is True:
            return f"{who} rewrote the {_kind(p)}"
        return f"{who} {verb} the {_kind(p)}"

    return say


def _pushed(who: str, p: Mapping[str, Any]) -> str:
    summary = _s(p, "summary")
    where = summary.partition(" pushed to ")[2] if " pushed to " in summary else "its target"
    return f"{who} sent the {_kind(p)} to {where}"


def _agent(verb: str) -> Callable[[str, Mapping[str, Any]], str]:
    def say(who: str, p: Mapping[str, Any]) -> str:
        return f"{who} {verb} a run of the agent {_s(p, 'agent') or '?'}"

    return say


def _agent_finished(who: str, p: Mapping[str, Any]) -> str:
    status = _s(p, "status").replace("_", " ") or "ended"
    code = p.get("exit_code")
    exit_ = f" (exit code {code})" if isinstance(code, int) and not isinstance(code, bool) else ""
    return f"The agent {_s(p, 'agent') or '?'} {status}{exit_}"


_SENTENCES: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    "case.opened": _opened,
    "case.updated": _updated,
    "case.acknowledged": lambda who, p: f"{who} acknowledged the case",
    "case.assigned": _assigned,
    "case.callback": _callback,
    "case.claimed": _claimed,
    "case.closed": _closed,
    "case.escalated": _handoff("escalated", "Escalated"),
    "case.parked": _handoff("parked", "Parked"),
    "case.reactivated": _moved("made the case open again"),
    "case.reopened": _moved("reopened the case"),
    "case.replied": _replied,
    "case.resolved": _resolved,
    "case.severity_changed": _severity,
    "case.tagged": _tagged,
    "note.added": _note,
    "branch.forked": _forked,
    "branch.revived": _revived,
    "branch.status_changed": _branch_status,
    "branch.switched": _switched,
    "output.generated": _output("wrote"),
    "output.edited": _output("edited"),
    "output.approved": _output("approved"),
    "output.rejected": _output("rejected"),
    "output.pushed": _pushed,
    "agent.run_requested": _agent("asked for"),
    "agent.run_approved": _agent("approved"),
    "agent.run_rejected": _agent("rejected"),
    "agent.run_cancelled": _agent("cancelled"),
    "agent.run_finished": _agent_finished,
}
