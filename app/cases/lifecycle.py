"""The case lifecycle (SPEC C3): which status may follow which, and the bookkeeping.

    open ──► escalated ◄──► parked          (handoffs: escalate, park; claim → open)
      │          │             │
      └──────────┴─────┬───────┘
                       ▼
                   resolved ──► closed      (reopen: resolved/closed → open)

Any live case (open, escalated, parked) may also be closed directly (manual, callback,
auto). Every change is a case event written in the same session; callers commit.
"""

from __future__ import annotations

from typing import Any

from app import clock
from app.cases.models import CLOSE_REASONS, LIVE_STATUSES, SEVERITIES, Case
from app.errors import DomainError
from app.events.record import record_event

#: status → the statuses it may move to.
ALLOWED: dict[str, tuple[str, ...]] = {
    "open": ("escalated", "parked", "resolved", "closed"),
    "escalated": ("open", "parked", "resolved", "closed"),
    "parked": ("open", "escalated", "resolved", "closed"),
    "resolved": ("open", "closed"),
    "closed": ("open",),
}
#: The event each arrival writes; "open" depends on where the case comes from.
EVENT_FOR = {"escalated": "case.escalated", "parked": "case.parked",
             "resolved": "case.resolved", "closed": "case.closed"}  # fmt: skip


class TransitionError(DomainError):
    """The change is not allowed from the case's status; the message lists what is (409).
    With ``case_status`` the answer also carries ``status`` and the ``allowed`` statuses."""

    status, error = 409, "illegal_transition"

    def __init__(self, message: str, case_status: str | None = None) -> None:
        super().__init__(message)
        self.case_status = case_status

    def extra(self) -> dict:
        if self.case_status is None:
            return {}
        return {"status": self.case_status, "allowed": list(allowed_from(self.case_status))}


class CaseInputError(DomainError, ValueError):
    """A value for a case field is not acceptable (400); the message says what is."""


def allowed_from(status: str) -> tuple[str, ...]:
    return ALLOWED.get(status, ())


def transition(
    case: Case,
    to: str,
    *,
    actor: Any = None,
    reason: str | None = None,
    delivery: Any = None,
    event_type: str | None = None,
    payload: dict | None = None,
) -> Any:
    """Move ``case`` to status ``to`` and write its event (returned); the caller commits.

    ``actor`` is the acting ``User`` (None for the system or a provider); ``delivery`` the
    delivery that caused it. ``reason`` is the close reason (manual, callback, auto) for
    ``closed``. ``event_type`` overrides the event written (e.g. ``case.claimed``). Raises
    ``TransitionError`` naming the statuses allowed from here.
    """
    if to not in allowed_from(case.status):
        allowed = ", ".join(allowed_from(case.status)) or "nothing"
        raise TransitionError(
            f"a {case.status} case cannot become {to}; allowed: {allowed}", case.status
        )
    if to == "closed" and reason not in CLOSE_REASONS:
        raise CaseInputError(f"close reason must be one of {', '.join(CLOSE_REASONS)}")
    now = clock.now()
    _account_time(case, now)
    previous = case.status
    case.status, case.status_changed_at, case.updated_at = to, now, now
    if to == "closed":
        case.closed_at, case.closed_reason = now, reason
    elif to == "resolved":
        case.resolved_at = now
    elif to == "open":
        case.closed_at = case.closed_reason = None
        if previous in ("resolved", "closed"):
            # A case that comes back is triggered again: nobody has seen this occurrence.
            case.resolved_at = case.acknowledged_at = case.acknowledged_by = None
    default_event = EVENT_FOR.get(to) or (
        "case.reopened" if previous in ("resolved", "closed") else "case.reactivated"
    )
    body = {"from": previous, "to": to, **({"reason": reason} if reason else {}),
            **(payload or {})}  # fmt: skip
    return record_event(
        case, event_type or default_event, delivery=delivery, actor=_actor(actor), payload=body
    )


def _account_time(case: Case, now: Any) -> None:
    # Time in the status being left counts as active (open, escalated) or parked.
    from app.templating import as_utc

    since = case.status_changed_at or case.created_at
    if since is None:
        return
    seconds = max(0, int((now - as_utc(since)).total_seconds()))
    if case.status in ("open", "escalated"):
        case.active_seconds = (case.active_seconds or 0) + seconds
    elif case.status == "parked":
        case.parked_seconds = (case.parked_seconds or 0) + seconds


def live_seconds(case: Case) -> tuple[int, int]:
    """``(active, parked)`` seconds including the time in the current status so far."""
    from app.templating import as_utc

    active, parked = case.active_seconds or 0, case.parked_seconds or 0
    since = case.status_changed_at or case.created_at
    if since is not None:
        running = max(0, int((clock.now() - as_utc(since)).total_seconds()))
        if case.status in ("open", "escalated"):
            active += running
        elif case.status == "parked":
            parked += running
    return active, parked


def is_live(case: Case) -> bool:
    return case.status in LIVE_STATUSES


def acknowledge(case: Case, *, actor: Any) -> Any:
    """Mark a live case as seen by ``actor`` (who and when); writes ``case.acknowledged``
    and returns it, or None when the case is already acknowledged (first one counts).
    Raises ``TransitionError`` for a resolved or closed case: there is nothing to answer."""
    if not is_live(case):
        raise TransitionError(
            f"a {case.status} case cannot be acknowledged; only open, escalated or parked ones",
            case.status,
        )
    if case.acknowledged_at is not None:
        return None
    now = clock.now()
    case.acknowledged_at, case.acknowledged_by, case.updated_at = now, _actor(actor), now
    return record_event(case, "case.acknowledged", actor=_actor(actor), payload={})


def assign(case: Case, user: Any, *, actor: Any) -> Any:
    """Make ``user`` (a ``User`` or None to unassign) the assignee; writes ``case.assigned``."""
    case.assignee_id = user.id if user is not None else None
    case.assignee = user
    case.updated_at = clock.now()
    return record_event(
        case, "case.assigned", actor=_actor(actor),
        payload={"assignee": user.email if user is not None else None},
    )  # fmt: skip


def set_severity(case: Case, severity: str, *, actor: Any) -> Any:
    """Change the severity (one of ``SEVERITIES``); writes ``case.severity_changed``."""
    if severity not in SEVERITIES:
        raise CaseInputError(f"severity must be one of {', '.join(SEVERITIES)}")
    previous, case.severity, case.updated_at = case.severity, severity, clock.now()
    return record_event(case, "case.severity_changed", actor=_actor(actor),
                        payload={"from": previous, "to": severity})  # fmt: skip


def set_tags(case: Case, add: list[str] = (), remove: list[str] = (), *, actor: Any) -> Any:
    """Add and remove tags (trimmed, lower-case, ≤ 40 characters each; at most 20 per case)."""
    tags = list(case.tags or [])
    for tag in add:
        tag = _tag(tag)
        if tag and tag not in tags:
            tags.append(tag)
    tags = [t for t in tags if t not in {_tag(r) for r in remove}]
    if len(tags) > 20:
        raise CaseInputError("a case can carry at most 20 tags")
    case.tags, case.updated_at = tags, clock.now()
    return record_event(
        case,
        "case.tagged",
        actor=_actor(actor),
        payload={"tags": tags, "added": list(add), "removed": list(remove)},
    )


def normalise_tag(tag: str) -> str:
    """A tag as stored: trimmed, lower-case; raises ``CaseInputError`` over 40 characters."""
    tag = str(tag).strip().lower()
    if len(tag) > 40:
        raise CaseInputError(f"tag {tag[:40]!r}… is longer than 40 characters")
    return tag


_tag = normalise_tag


def _actor(actor: Any) -> str | None:
    return getattr(actor, "email", None) or (actor if isinstance(actor, str) else None)
