"""Handoff rules (SPEC C5): park or escalate a case with a snapshot, the queue, claiming.

Plain functions; callers commit. Every change goes through ``app.cases.lifecycle`` so the
case's status, its active/parked time and its case event (with the acting user) move
together: ``case.parked`` / ``case.escalated`` on a handoff, ``case.claimed`` on a claim.

A handoff *waits* (is in the queue) while it is unclaimed, is the latest handoff of its
case, and its case is still parked or escalated. A case moved on by other means (reopened
from the case actions, resolved, closed) leaves its handoff out of the queue rather than
letting someone claim a case that nobody is waiting on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case as sa_case
from sqlalchemy import func, update
from sqlalchemy.orm import contains_eager

from app import clock
from app.accounts.models import User
from app.cases import lifecycle
from app.cases.lifecycle import CaseInputError, TransitionError
from app.cases.models import Case
from app.errors import DomainError
from app.extensions import db
from app.handoffs.models import INTENTS, PRIORITIES, TARGET_STATUS, Handoff
from app.logs import log
from app.writing.builtin import BuiltinWriter
from app.writing.context import case_context, register_context

#: Statuses in which a case waits for its handoff to be claimed.
WAITING_STATUSES = ("parked", "escalated")
MAX_NOTES = 5000
MAX_WAITING_ON = 500
MAX_NEXT_STEP = 1000

__all__ = [
    "HandoffConflict",
    "HandoffInputError",
    "TransitionError",
    "build_snapshot",
    "claim",
    "create_handoff",
    "format_duration",
    "handoffs_of",
    "is_waiting",
    "parked",
    "pending_handoff",
    "queue",
    "queue_count",
]


class HandoffInputError(CaseInputError):
    """A handoff value is not acceptable (400); the message says what is. ``field`` names
    the input it is about (for inline form errors), None when it is about several."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class HandoffConflict(DomainError):
    """The handoff cannot happen in the current state (409): the case already has one
    waiting, or the handoff was claimed already / no longer waits. ``code`` is the snake_case
    error for the API, ``handoff`` the handoff in the way."""

    status = 409

    def __init__(self, message: str, *, code: str, handoff: Handoff | None = None):
        super().__init__(message, error=code)
        self.code, self.handoff = code, handoff
        # Read now: the handler rolls the session back before it answers.
        self._extra: dict = {}
        if handoff is not None:
            self._extra["handoff_id"] = handoff.id
            if code == "already_claimed":
                claimer = handoff.claimed_by
                self._extra["claimed_by"] = claimer.email if claimer is not None else None

    def extra(self) -> dict:
        """The handoff in the way (``handoff_id``) and, when claimed, by whom."""
        return self._extra


# -- creating ------------------------------------------------------------------------------


def create_handoff(
    case: Case,
    intent: str,
    notes: str,
    priority: str = "normal",
    actor: User | None = None,
    waiting_on: str | None = None,
    resume_at: datetime | None = None,
    to_user: User | None = None,
    next_step: str | None = None,
) -> Handoff:
    """Park (``intent="park"``) or escalate (``"escalate"``) ``case``; return the handoff.

    ``notes`` answers "what are you waiting on?" (park) or "why?" (escalate); ``waiting_on``
    (park) names who or what, ``resume_at`` (park, aware or UTC, in the future) when to pick
    it up again; ``to_user`` (escalate) an active engineer or admin to take it;
    ``next_step`` overrides the next step the snapshot derives from the branch map.

    Stores a snapshot (``build_snapshot``), moves the case to parked/escalated through the
    lifecycle (event ``case.parked``/``case.escalated`` with ``handoff_id``, acting user
    ``actor``), and for an escalation asks a task for the writer's assessment
    (``app/handoffs/tasks.py``; ``handoff.assessment`` stays None until it is written, or
    when the writer has none). The caller commits.

    Raises ``HandoffInputError`` (400) for a bad value, ``TransitionError`` (409, names the
    allowed statuses) when the case's status does not allow it, ``HandoffConflict`` (409,
    code ``handoff_pending``) when the case already has a handoff waiting.
    """
    intent = _choice("intent", intent, INTENTS)
    priority = _choice("priority", priority or "normal", PRIORITIES)
    notes = _text("notes", notes, MAX_NOTES, required=True, intent=intent)
    waiting_on = _text("waiting_on", waiting_on, MAX_WAITING_ON)
    next_step = _text("next_step", next_step, MAX_NEXT_STEP)
    if intent != "park" and (waiting_on or resume_at is not None):
        raise HandoffInputError("waiting_on and resume_at apply to parking only")
    if intent != "escalate" and to_user is not None:
        raise HandoffInputError("to_user applies to escalations only")
    now = clock.now()
    if resume_at is not None:
        resume_at = _aware(resume_at)
        if resume_at <= now:
            raise HandoffInputError("resume_at must be in the future", "resume_at")
    if to_user is not None and not (to_user.active and to_user.has_role("engineer")):
        raise HandoffInputError(
            f"{to_user.email} cannot take an escalation: it needs an active engineer or admin",
            "to_user",
        )

    _lock(case)
    waiting = pending_handoff(case)
    if waiting is not None:
        raise HandoffConflict(
            f"case #{case.id} already has handoff #{waiting.id} ({_noun(waiting)} by "
            f"{_who(waiting.created_by)}) waiting in the queue; claim it before handing the "
            "case off again",
            code="handoff_pending",
            handoff=waiting,
        )
    target = TARGET_STATUS[intent]
    if target not in lifecycle.allowed_from(case.status):
        # Refuse before anything is written (lifecycle would say the same).
        allowed = ", ".join(lifecycle.allowed_from(case.status)) or "nothing"
        raise TransitionError(
            f"a {case.status} case cannot become {target}; allowed: {allowed}", case.status
        )

    branches = _branches(case)
    snapshot = build_snapshot(
        case, branches, intent=intent, notes=notes, waiting_on=waiting_on, next_step=next_step
    )
    event = lifecycle.transition(
        case,
        target,
        actor=actor,
        payload={
            "intent": intent,
            "priority": priority,
            "summary": _event_summary(intent, priority, notes, waiting_on, to_user),
            **({"to_user": to_user.email} if to_user is not None else {}),
        },
    )
    handoff = Handoff(
        case_id=case.id,
        intent=intent,
        priority=priority,
        notes=notes,
        waiting_on=waiting_on,
        resume_at=resume_at,
        to_user=to_user,
        snapshot=snapshot,
        created_by=actor,
        created_at=case.status_changed_at or now,
    )
    handoff.case = case
    db.session.add(handoff)
    db.session.flush()
    # Reassigned (not mutated) so the JSON column sees the change.
    event.payload = {**event.payload, "handoff_id": handoff.id}
    if intent == "escalate":
        from app.handoffs.tasks import request_assessment

        request_assessment(handoff, actor)
    return handoff


# -- claiming ------------------------------------------------------------------------------


def claim(handoff: Handoff, actor: User) -> Handoff:
    """``actor`` takes the handoff: the case goes back to ``open`` (event ``case.claimed``
    with ``handoff_id``), is assigned to ``actor``, and the handoff records who and when; a
    task then writes their briefing (the writer's, or one composed from the snapshot when
    the writer has none; ``app/handoffs/tasks.py``). The caller commits.

    Raises ``HandoffConflict`` (409): ``already_claimed`` naming who claimed it, or
    ``handoff_not_waiting`` when the case moved on without a claim (reopened, resolved,
    closed) or a newer handoff replaced this one.
    """
    if handoff.claimed_at is not None:
        raise _already_claimed(handoff)
    case = handoff.case
    _lock(case)
    if not is_waiting(handoff):
        raise HandoffConflict(
            f"handoff #{handoff.id} no longer waits: "
            + (
                f"case #{case.id} is {case.status} now"
                if case.status not in WAITING_STATUSES
                else f"a newer handoff replaced it on case #{case.id}"
            ),
            code="handoff_not_waiting",
            handoff=handoff,
        )
    now = clock.now()
    # Conditional update: of two people claiming at once, exactly one wins (the other's
    # UPDATE waits for the first commit on Postgres and then matches no row).
    won = db.session.execute(
        update(Handoff)
        .where(Handoff.id == handoff.id, Handoff.claimed_at.is_(None))
        .values(claimed_by_id=actor.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        db.session.refresh(handoff)
        raise _already_claimed(handoff)
    db.session.refresh(handoff, ["claimed_by_id", "claimed_at"])
    handoff.claimed_by = actor

    from app.handoffs.tasks import request_briefing

    request_briefing(handoff, actor)
    lifecycle.transition(
        case,
        "open",
        actor=actor,
        event_type="case.claimed",
        payload={
            "handoff_id": handoff.id,
            "intent": handoff.intent,
            "summary": f"{actor.email} claimed the {_noun(handoff)} (handoff #{handoff.id})",
        },
    )
    if case.assignee_id != actor.id:
        lifecycle.assign(case, actor, actor=actor)
    return handoff


def _already_claimed(handoff: Handoff) -> HandoffConflict:
    from app.templating import as_utc

    when = as_utc(handoff.claimed_at).strftime("%Y-%m-%d %H:%M UTC")
    return HandoffConflict(
        f"handoff #{handoff.id} was already claimed by {_who(handoff.claimed_by)} at {when}",
        code="already_claimed",
        handoff=handoff,
    )


# -- reading -------------------------------------------------------------------------------


def _latest_per_case():
    return db.select(func.max(Handoff.id)).group_by(Handoff.case_id)


def _waiting():
    """The condition of a waiting handoff: unclaimed, its case's latest, the case still
    parked or escalated (rows joined with their case)."""
    return (
        Handoff.claimed_at.is_(None)
        & Case.status.in_(WAITING_STATUSES)
        & Handoff.id.in_(_latest_per_case())
    )


def queue(intent: str | None = None) -> list[Handoff]:
    """Handoffs waiting to be claimed: elevated first, then oldest first.

    ``intent`` ("park" or "escalate") narrows it; None or "" means both. Raises
    ``HandoffInputError`` for another intent. The console's claim queue is the escalations;
    parked cases wait on someone and are listed apart (``parked``).
    """
    query = (
        db.select(Handoff)
        .join(Handoff.case)
        .options(contains_eager(Handoff.case))
        .where(_waiting())
        .order_by(
            sa_case((Handoff.priority == "elevated", 0), else_=1),
            Handoff.created_at,
            Handoff.id,
        )
    )
    if intent:
        query = query.where(Handoff.intent == _choice("intent", intent, INTENTS))
    return list(db.session.scalars(query))


def parked(waiting: list[Handoff]) -> list[Handoff]:
    """The parked ones of ``waiting`` (``queue()``'s list), by when to resume them: due
    first, then the soonest, then those without a resume time, oldest first."""
    from app.templating import as_utc

    def order(h: Handoff) -> tuple:
        return (h.resume_at is None, as_utc(h.resume_at or h.created_at), h.created_at, h.id)

    return sorted((h for h in waiting if h.intent == "park"), key=order)


def queue_count() -> int:
    """How many escalations wait to be claimed (the nav's badge): one COUNT query."""
    count = db.session.scalar(
        db.select(func.count(Handoff.id))
        .join(Handoff.case)
        .where(_waiting(), Handoff.intent == "escalate")
    )
    return int(count or 0)


def handoffs_of(case: Case) -> list[Handoff]:
    """The case's handoffs, oldest first."""
    return list(
        db.session.scalars(
            db.select(Handoff).where(Handoff.case_id == case.id).order_by(Handoff.id)
        )
    )


def pending_handoff(case: Case) -> Handoff | None:
    """The case's handoff waiting in the queue, if any (see the module docstring)."""
    if case.status not in WAITING_STATUSES:
        return None
    latest = db.session.scalars(
        db.select(Handoff).where(Handoff.case_id == case.id).order_by(Handoff.id.desc()).limit(1)
    ).first()
    return latest if latest is not None and latest.claimed_at is None else None


def is_waiting(handoff: Handoff) -> bool:
    """True while ``handoff`` is in the queue: unclaimed, latest on its case, case waiting."""
    return handoff.claimed_at is None and pending_handoff(handoff.case) is handoff


# -- the snapshot --------------------------------------------------------------------------


def build_snapshot(
    case: Case,
    branches: list[dict],
    *,
    intent: str,
    notes: str,
    waiting_on: str | None = None,
    next_step: str | None = None,
) -> dict:
    """Where the case stands, for whoever picks it up. Plain JSON::

        {"taken_at": iso, "status": str (before the handoff), "assignee": email|None,
         "severity": str, "active_seconds": int, "parked_seconds": int,
         "branch_map": [{"id", "label", "status", "badge", "parent_id", "depth"}]  (tree
                       order; badge adds "revived"),
         "active_branch": {"id", "label", "status", "summary"} | None,
         "tried": [{"id", "label", "status", "reason", "summary"}]  (branches with notes
                   or a verdict),
         "next_step": str, "waiting_on": str|None,
         "watch_out": [{"id", "label", "reason"}]  (dead ends: do not repeat them)}

    ``branches`` are the writer's branch dicts (``app.writing``); their
    ``summary`` is used when present, else the built-in writer's ``branch_summary`` (local
    and instant: the configured writer may be an LLM, and this runs under the case's lock).
    """
    active, parked = lifecycle.live_seconds(case)
    ordered = _tree(branches)
    summaries = {b["id"]: _summary(b) for b in ordered}
    by_id = {b["id"]: b for b in ordered}
    active_branch = by_id.get(case.active_branch_id)
    tried = [
        {
            "id": b["id"],
            "label": b.get("label"),
            "status": b.get("status"),
            "reason": b.get("reason"),
            "summary": summaries[b["id"]],
        }
        for b in ordered
        if b.get("notes") or b.get("status") in ("dead_end", "solved") or b.get("revived")
    ]
    watch_out = [
        {"id": b["id"], "label": b.get("label"), "reason": b.get("reason")}
        for b in ordered
        if b.get("status") == "dead_end"
    ]
    return {
        "taken_at": clock.now().isoformat(),
        "status": case.status,
        "assignee": case.assignee.email if case.assignee is not None else None,
        "severity": case.severity,
        "active_seconds": active,
        "parked_seconds": parked,
        "branch_map": [
            {
                "id": b["id"],
                "label": b.get("label"),
                "status": b.get("status"),
                "badge": b.get("badge") or b.get("status"),
                "parent_id": b.get("parent_id"),
                "depth": b["depth"],
            }
            for b in ordered
        ],
        "active_branch": (
            {
                "id": active_branch["id"],
                "label": active_branch.get("label"),
                "status": active_branch.get("status"),
                "summary": summaries[active_branch["id"]],
            }
            if active_branch is not None
            else None
        ),
        "tried": tried,
        "next_step": next_step
        or _derive_next_step(ordered, active_branch, intent, notes, waiting_on),
        "waiting_on": waiting_on or (notes if intent == "park" else None),
        "watch_out": watch_out,
    }


def _tree(branches: list[dict]) -> list[dict]:
    """``branches`` in tree order (parents before children, siblings as given) with
    ``depth`` (root 0). Branches whose parent is missing count as roots."""
    ids = {b.get("id") for b in branches}
    children: dict[Any, list[dict]] = {}
    for b in branches:
        parent = b.get("parent_id") if b.get("parent_id") in ids else None
        children.setdefault(parent, []).append(b)
    ordered: list[dict] = []
    seen: set = set()

    def walk(parent: Any, depth: int) -> None:
        for b in children.get(parent, []):
            if b.get("id") in seen:  # a cycle would be a bug elsewhere; do not loop on it
                continue
            seen.add(b.get("id"))
            ordered.append({**b, "depth": depth})
            walk(b.get("id"), depth + 1)

    walk(None, 0)
    return ordered


def _summary(branch: dict) -> str:
    if branch.get("summary"):
        return str(branch["summary"])
    try:
        return BuiltinWriter().branch_summary(branch).text
    except Exception:  # a summary is a nicety; a handoff must not fail on it
        log.warning("handoff.branch_summary_failed", branch_id=branch.get("id"), exc_info=True)
        return ""


def _derive_next_step(
    branches: list[dict],
    active: dict | None,
    intent: str,
    notes: str,
    waiting_on: str | None,
) -> str:
    """What to do next, from the branch map: finish a solved branch, continue the active
    one, or try the untried ones; without branches, from the handoff itself."""
    solved = [b for b in branches if b.get("status") == "solved"]
    if solved:
        reason = f" ({solved[0]['reason']})" if solved[0].get("reason") else ""
        return f"Resolve the case: “{solved[0].get('label')}” solved it{reason}."
    if active is not None and active.get("status") not in ("dead_end", "solved"):
        return f"Continue on “{active.get('label')}”."
    untried = [b.get("label") for b in branches if b.get("status") == "untried"]
    if untried:
        return "Try the untried hypotheses: " + ", ".join(f"“{u}”" for u in untried) + "."
    if intent == "park":
        return f"Pick the case up again once this arrives: {waiting_on or notes}"
    return f"Take over the escalation: {notes}"


# -- the writer ----------------------------------------------------------------------------


def _branches(case: Case) -> list[dict]:
    """The case's branches as the writer's branch dicts."""
    from app.branches.service import branches_for_context

    return list(branches_for_context(case) or [])


def _writer_context(case: Case, branches: list[dict] | None = None) -> dict:
    """The whole case as the writers take it (``app.writing.context.case_context``), with
    the handoffs carrying their snapshots and assessments."""
    context = case_context(case)
    if branches is not None:
        context["branches"] = branches
    return context


def handoffs_for_writer(case: Case) -> list[dict]:
    """The case's handoffs, oldest first, as the writers take them (with snapshots and
    assessments)."""
    return [_handoff_for_writer(h) for h in handoffs_of(case)]


@register_context
def _handoffs_context(case: Case) -> dict:
    """The handoffs' part of every writer context (``app.writing.context``)."""
    return {"handoffs": handoffs_for_writer(case)}


def _handoff_for_writer(handoff: Handoff) -> dict:
    """A handoff as the writer takes it: the context shape plus the snapshot, assessment,
    and who created it."""
    data = handoff.to_dict()
    return {
        key: data[key]
        for key in (
            "id",
            "intent",
            "priority",
            "notes",
            "waiting_on",
            "resume_at",
            "to_user",
            "created_by",
            "created_at",
            "claimed_by",
            "claimed_at",
            "snapshot",
            "assessment",
        )
    }


def _normalise_assessment(assessment: Any) -> dict | None:
    """The writer's assessment in the documented shape, or None when it is not one."""
    if not isinstance(assessment, dict) or not assessment.get("likely_cause"):
        return None
    steps = assessment.get("suggested_steps") or []
    if isinstance(steps, str):
        steps = [steps]
    confidence = str(assessment.get("confidence") or "low").lower()
    return {
        "likely_cause": str(assessment["likely_cause"]),
        "suggested_steps": [str(step) for step in steps],
        "confidence": confidence if confidence in ("low", "medium", "high") else "low",
    }


def plain_briefing(handoff: Handoff) -> str:
    """A briefing composed from the handoff and its snapshot alone (Markdown), for when the
    writer has none: who handed it off and why, where it stood, what to avoid, what next."""
    snap = handoff.snapshot or {}
    what = "Escalated" if handoff.intent == "escalate" else "Parked"
    priority = " (elevated priority)" if handoff.priority == "elevated" else ""
    lines = [
        f"**{what}{priority}** by {_who(handoff.created_by)}: {handoff.notes}",
        "",
        f"- Status when handed off: {snap.get('status', 'unknown')}; active "
        f"{format_duration(snap.get('active_seconds') or 0)}, parked "
        f"{format_duration(snap.get('parked_seconds') or 0)}.",
    ]
    if snap.get("waiting_on") and handoff.intent == "park":
        lines.append(f"- Waiting on: {snap['waiting_on']}")
    if handoff.to_user is not None:
        lines.append(f"- Escalated to: {handoff.to_user.email}")
    active = snap.get("active_branch")
    if active:
        lines.append(f"- Active branch: “{active.get('label')}” ({active.get('status')})")
    tried = [t for t in snap.get("tried") or [] if t.get("summary")]
    if tried:
        lines += ["", "**Tried so far**"]
        for t in tried:
            summary = " ".join(str(t["summary"]).split())
            lines.append(f"- “{t.get('label')}” ({t.get('status')}): {summary}")
    if snap.get("watch_out"):
        lines += ["", "**Watch out — dead ends, do not repeat**"]
        for w in snap["watch_out"]:
            reason = f": {w['reason']}" if w.get("reason") else ""
            lines.append(f"- “{w.get('label')}”{reason}")
    assessment = handoff.assessment
    if assessment:
        lines += [
            "",
            f"**Assessment** ({assessment.get('confidence')} confidence): "
            f"{assessment.get('likely_cause')}",
        ]
        lines += [f"- {step}" for step in assessment.get("suggested_steps") or []]
    if snap.get("next_step"):
        lines += ["", f"**Next step:** {snap['next_step']}"]
    return "\n".join(lines)


# -- small helpers -------------------------------------------------------------------------


def format_duration(seconds: int | float) -> str:
    """``7500`` → ``"2 h 5 min"``; ``300`` → ``"5 min"``; ``90000`` → ``"1 d 1 h"``;
    under a minute → ``"0 min"``."""
    minutes = int(seconds or 0) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _lock(case: Case) -> None:
    """Lock the case row for this transaction (Postgres; SQLite serialises writers anyway)
    and load its current values, so two handoffs or claims at once cannot both pass."""
    db.session.execute(
        db.select(Case)
        .where(Case.id == case.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise HandoffInputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}", name)
    return value


def _text(
    name: str, value: Any, limit: int, *, required: bool = False, intent: str | None = None
) -> str | None:
    if value is not None and not isinstance(value, str):
        raise HandoffInputError(f"{name} must be text", name)
    value = (value or "").strip()
    if not value:
        if required:
            question = "what are you waiting on?" if intent == "park" else "why?"
            raise HandoffInputError(f"{name} is required: say {question}", name)
        return None
    if len(value) > limit:
        raise HandoffInputError(f"{name} is longer than {limit} characters", name)
    return value


def _aware(moment: datetime) -> datetime:
    from app.templating import as_utc

    return as_utc(moment)


def _who(user: User | None) -> str:
    return user.email if user is not None else "someone no longer here"


def _noun(handoff: Handoff) -> str:
    return "escalation" if handoff.intent == "escalate" else "parked handoff"


def _event_summary(
    intent: str, priority: str, notes: str, waiting_on: str | None, to_user: User | None
) -> str:
    if intent == "park":
        return f"Parked, waiting on {waiting_on}: {notes}" if waiting_on else f"Parked: {notes}"
    to = f" to {to_user.email}" if to_user is not None else ""
    return f"Escalated{to} ({priority}): {notes}"
