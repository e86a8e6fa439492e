"""Case rules: open, update, close. Plain functions; callers commit.

Every change writes its case event in the same session (``record_event``), so a committed
case change always has its event and vice versa.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from app import clock
from app.cases import lifecycle
from app.cases.lifecycle import CaseInputError
from app.cases.models import Case
from app.events.record import record_event
from app.extensions import db
from app.inputs import as_id
from app.webhooks.providers.base import CaseFacts

#: ``session.info`` key: the cases this transaction found or opened, by (endpoint, dedup key).
_FOUND = "casehook.cases_by_key"
#: ``session.info`` key: the (endpoint, dedup key) pairs ``prefetch_cases`` found no case for.
_MISSING = "casehook.cases_missing"
#: ``session.info`` key: ids of the cases this transaction opened.
_OPENED = "casehook.cases_opened"


def opened_in_transaction(case: Case) -> bool:
    """True when ``case`` was opened (inserted) in the session's current transaction."""
    return case.id is not None and case.id in db.session.info.get(_OPENED, ())


def find_case(endpoint_id: str, dedup_key: str | None) -> Case | None:
    """The case with ``dedup_key`` on the endpoint, whatever its status; None without a key.

    A case already found or opened in this transaction is not looked up again (the worker
    processes many deliveries per transaction): the session would hand back the same
    object anyway. Neither lookup flushes, so the batch's changes are written together at
    the commit (one ``executemany`` per statement) rather than one delivery at a time.
    """
    if not dedup_key:
        return None
    found = db.session.info.setdefault(_FOUND, {})
    case = found.get((endpoint_id, dedup_key))
    if case is not None and case in db.session and not sa_inspect(case).deleted:
        return case
    if case is None and (endpoint_id, dedup_key) in db.session.info.get(_MISSING, ()):
        return None  # looked up for this batch; a case opened since would be in ``found``
    # No autoflush: a case opened in this transaction is in ``found`` (and flushed), and
    # nothing changes a case's endpoint or key, so what is pending cannot change the answer.
    with db.session.no_autoflush:
        case = db.session.scalars(
            db.select(Case).where(Case.endpoint_id == endpoint_id, Case.dedup_key == dedup_key)
        ).first()
    if case is not None:
        found[(endpoint_id, dedup_key)] = case
    return case


def prefetch_cases(keys: dict[str, set[str]]) -> None:
    """Look up, in one query per endpoint, the cases with these dedup keys
    (``{endpoint_id: {dedup_key, ...}}``) for the rest of this transaction: ``find_case``
    then answers from memory, "none" included. The worker calls it for each batch, whose
    deliveries mostly name different cases (one ``SELECT`` per delivery, before)."""
    found = db.session.info.setdefault(_FOUND, {})
    missing = db.session.info.setdefault(_MISSING, set())
    for endpoint_id, wanted in keys.items():
        todo = sorted(k for k in wanted if k and (endpoint_id, k) not in found)
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            with db.session.no_autoflush:  # as in find_case: pending rows cannot change it
                cases = db.session.scalars(
                    db.select(Case).where(
                        Case.endpoint_id == endpoint_id, Case.dedup_key.in_(chunk)
                    )
                ).all()
            for case in cases:
                found[(endpoint_id, case.dedup_key)] = case
            missing.update((endpoint_id, k) for k in chunk if (endpoint_id, k) not in found)


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_found(session: Session, transaction: Any) -> None:
    # The transaction's end, or a savepoint's (a case opened in a savepoint rolled back is
    # gone); not the inner transaction every flush runs in, which would empty it each flush.
    if transaction.parent is not None and not transaction.nested:
        return
    session.info.pop(_FOUND, None)
    session.info.pop(_MISSING, None)
    session.info.pop(_OPENED, None)


def open_case(facts: CaseFacts, delivery: Any) -> tuple[Case, str]:
    """Open a case for ``delivery``; reopen or update the one with the same dedup key.

    Returns ``(case, outcome)`` where outcome is a short sentence for the deliveries log.
    """
    case = find_case(delivery.endpoint_id, facts.dedup_key)
    if case is None:
        return _create(facts, delivery), "opened a case"
    if not lifecycle.is_live(case):
        _refresh(case, facts)
        _touch(case, delivery)
        lifecycle.transition(case, "open", delivery=delivery, payload=_payload(facts, delivery))
        return case, "reopened the case"
    return update_case(facts, delivery, case)


def update_case(facts: CaseFacts, delivery: Any, case: Case | None = None) -> tuple[Case, str]:
    """Add ``delivery`` to its case's timeline (``case.updated``); open the case if none yet."""
    case = case or find_case(delivery.endpoint_id, facts.dedup_key)
    if case is None:
        return _create(facts, delivery), "opened a case"
    _refresh(case, facts)
    _touch(case, delivery)
    record_event(case, "case.updated", delivery=delivery, payload=_payload(facts, delivery))
    return case, "updated the case"


def close_case(facts: CaseFacts, delivery: Any, reason: str = "auto") -> tuple[Case | None, str]:
    """Close the case with the delivery's dedup key (``reason``: auto, manual, callback).

    A case that does not exist or is already closed is left alone; the outcome says so.
    """
    case = find_case(delivery.endpoint_id, facts.dedup_key)
    if case is None:
        return None, "no case to close"
    _touch(case, delivery)
    if case.status == "closed":
        record_event(case, "case.updated", delivery=delivery, payload=_payload(facts, delivery))
        return case, "case already closed"
    lifecycle.transition(
        case, "closed", reason=reason, delivery=delivery, payload=_payload(facts, delivery)
    )
    return case, f"closed the case ({reason})"


def _create(facts: CaseFacts, delivery: Any) -> Case:
    now = clock.now()
    values = {
        "title": facts.title or "Untitled case",
        "provider": delivery.endpoint.provider,
        "endpoint_id": delivery.endpoint_id,
        "dedup_key": facts.dedup_key,
        "severity": facts.severity,
        "source_url": facts.source_url,
        "source": facts.source,
        "created_at": now,
        "updated_at": now,
        "status_changed_at": now,
        "delivery_count": 1,
    }
    # The event needs the case's id now. One INSERT … RETURNING hands back the case as a
    # persistent object; a flush would also write everything the batch has pending, one
    # row at a time (the worker opens many cases per transaction).
    case = db.session.scalars(
        insert(Case).returning(Case), [values], execution_options={"autoflush": False}
    ).one()
    db.session.info.setdefault(_OPENED, set()).add(case.id)
    if facts.dedup_key:
        db.session.info.setdefault(_FOUND, {})[(delivery.endpoint_id, facts.dedup_key)] = case
    delivery.case_id = case.id
    record_event(case, "case.opened", delivery=delivery, payload=_payload(facts, delivery))
    return case


def _refresh(case: Case, facts: CaseFacts) -> None:
    # Titles follow the source (an edited issue title); links fill in if they were missing.
    if facts.title:
        case.title = facts.title
    if facts.source_url:
        case.source_url = facts.source_url
    if facts.source and not case.source:
        case.source = facts.source


def _touch(case: Case, delivery: Any) -> None:
    case.updated_at = clock.now()
    case.delivery_count = (case.delivery_count or 0) + 1
    delivery.case_id = case.id


def _payload(facts: CaseFacts, delivery: Any) -> dict:
    return {"event_type": delivery.event_type, "summary": facts.summary, "title": facts.title}


# --- Manual actions (console, JSON API, CLI): one entry point, so the rules are the same ---

#: What ``handle`` does; "resolve" (outputs) and "park"/"escalate" (handoffs) live elsewhere.
ACTIONS = (
    "acknowledge",
    "close",
    "reopen",
    "resume",
    "assign",
    "unassign",
    "severity",
    "tag",
    "untag",
)
#: Close reasons a person may give; ``callback`` is for the token-protected callback route.
MANUAL_CLOSE_REASONS = ("manual", "auto")
#: Cases one bulk action may touch (a page of the table is 25).
BULK_LIMIT = 200


def find_assignee(value: str | None, *, me: Any = None) -> Any:
    """The ``User`` named by ``value``: ``"me"`` (the acting user ``me``), an email, or a
    user id. Raises ``CaseInputError`` unless it is an active engineer or admin."""
    from app.accounts.models import User

    value = str(value or "").strip()
    if not value:
        raise CaseInputError('say who: "me", or the email of an engineer or admin')
    if value.lower() == "me":
        if getattr(me, "id", None) is None:
            raise CaseInputError('"me" needs a signed-in user; give an email instead')
        user = db.session.get(User, me.id)
    elif value.isdigit():
        user_id = as_id(value)  # "²" is a digit too, and ids end at MAX_ID
        user = db.session.get(User, user_id) if user_id else None
    else:
        user = db.session.scalars(db.select(User).where(User.email == value.lower())).first()
    if user is None or not user.active:
        raise CaseInputError(f"there is no active user {value!r}")
    if not user.has_role("engineer"):
        raise CaseInputError(
            f"{user.email} is a {user.role} and cannot work cases; assign an engineer or admin"
        )
    return user


def handle(
    case: Case,
    action: str,
    *,
    actor: Any,
    user: str | None = None,
    severity: str | None = None,
    tags: list[str] | str | None = None,
    reason: str | None = None,
    note: str | None = None,
) -> list[Any]:
    """Apply one manual ``action`` (see ``ACTIONS``) to ``case``; returns the events written
    (empty when nothing changed, e.g. assigning the current assignee). The caller commits.

    - ``acknowledge``: a live case, once (again: nothing changes; resolved/closed: 409);
    - ``close``: ``reason`` manual (default) or auto; ``reopen``: only from resolved/closed;
      ``resume``: a parked or escalated case back to open (``case.reactivated``), e.g. one
      an inactivity rule parked (handoffs' claim does the same for a handed-off case);
    - ``assign``: ``user`` is "me", an email or a user id (``find_assignee``); ``unassign``;
    - ``severity``: one of ``SEVERITIES``; ``tag``/``untag``: ``tags`` (a list, or one string
      with comma-separated tags).

    ``note`` (optional text) is kept in the close/reopen event. ``actor`` is the acting
    ``User`` (or a label such as "cli"). Raises ``TransitionError`` (409: not allowed from the
    case's status; the message lists what is) or ``CaseInputError`` (400).
    """
    note = _note(note)
    extra = {"note": note} if note else None
    if action == "acknowledge":
        event = lifecycle.acknowledge(case, actor=actor)
        return [event] if event is not None else []
    if action == "close":
        reason = reason or "manual"
        if reason not in MANUAL_CLOSE_REASONS:
            raise CaseInputError(
                f"close reason must be {' or '.join(MANUAL_CLOSE_REASONS)}; 'callback' is for "
                "the callback route (POST /api/cases/<id>/callback)"
            )
        return [lifecycle.transition(case, "closed", actor=actor, reason=reason, payload=extra)]
    if action == "reopen":
        return [_back_to_open(case, ("resolved", "closed"), "reopened", actor, extra)]
    if action == "resume":
        return [_back_to_open(case, ("parked", "escalated"), "resumed", actor, extra)]
    if action in ("assign", "unassign"):
        assignee = find_assignee(user, me=actor) if action == "assign" else None
        if (assignee.id if assignee else None) == case.assignee_id:
            return []
        return [lifecycle.assign(case, assignee, actor=actor)]
    if action == "severity":
        severity = str(severity or "").strip().lower()
        if severity == case.severity:
            return []
        return [lifecycle.set_severity(case, severity, actor=actor)]
    if action in ("tag", "untag"):
        wanted = _tag_list(tags)
        current = set(case.tags or [])
        if action == "tag":
            if all(tag in current for tag in wanted):
                return []
            return [lifecycle.set_tags(case, add=wanted, actor=actor)]
        if not any(tag in current for tag in wanted):
            return []
        return [lifecycle.set_tags(case, remove=wanted, actor=actor)]
    raise CaseInputError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")


def _back_to_open(
    case: Case, sources: tuple[str, str], verb: str, actor: Any, extra: dict | None
) -> Any:
    """``case`` back to ``open``, allowed only from the two ``sources`` statuses (the message
    says the case was not ``verb``, and what its status allows)."""
    if case.status not in sources:
        allowed = ", ".join(lifecycle.allowed_from(case.status)) or "nothing"
        raise lifecycle.TransitionError(
            f"only {sources[0]} or {sources[1]} cases can be {verb}; this case is {case.status} "
            f"(allowed from {case.status}: {allowed})",
            case.status,
        )
    return lifecycle.transition(case, "open", actor=actor, payload=extra)


def handle_many(case_ids: list[int], action: str, **options: Any) -> dict:
    """Apply ``handle(case, action, **options)`` to each case in ``case_ids``, each on its own
    merit: a case that refuses (e.g. already closed) is reported, the others are changed.

    Returns ``{"changed": [ids], "unchanged": [ids], "refused": {id: message},
    "missing": [ids]}``. Raises ``CaseInputError`` for a bad selection (none, too many) or a
    bad option (checked before any case changes). The caller commits.
    """
    from app.cases.lifecycle import TransitionError

    ids = list(dict.fromkeys(case_ids))
    if not ids:
        raise CaseInputError("select at least one case first")
    if len(ids) > BULK_LIMIT:
        raise CaseInputError(f"select at most {BULK_LIMIT} cases at once")
    check_options(action, **options)
    cases = {c.id: c for c in db.session.scalars(db.select(Case).where(Case.id.in_(ids)))}
    result: dict = {"changed": [], "unchanged": [], "refused": {}, "missing": []}
    for case_id in ids:
        case = cases.get(case_id)
        if case is None:
            result["missing"].append(case_id)
            continue
        try:
            events = handle(case, action, **options)
        except (TransitionError, CaseInputError) as exc:
            # Both are raised before the case changes, so a refused case is left untouched.
            result["refused"][case_id] = str(exc)
            continue
        result["changed" if events else "unchanged"].append(case_id)
    return result


def check_options(
    action: str,
    *,
    actor: Any = None,
    user: str | None = None,
    severity: str | None = None,
    tags: list[str] | str | None = None,
    reason: str | None = None,
    note: str | None = None,
) -> None:
    """Raise ``CaseInputError`` when ``handle``'s options for ``action`` are bad whatever
    the case (unknown action, user, severity, tags, reason); ``None`` when they are fine."""
    from app.cases.models import SEVERITIES

    if action not in ACTIONS:
        raise CaseInputError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    _note(note)
    if action == "close" and (reason or "manual") not in MANUAL_CLOSE_REASONS:
        raise CaseInputError(f"close reason must be {' or '.join(MANUAL_CLOSE_REASONS)}")
    if action == "assign":
        find_assignee(user, me=actor)
    if action == "severity" and str(severity or "").strip().lower() not in SEVERITIES:
        raise CaseInputError(f"severity must be one of {', '.join(SEVERITIES)}")
    if action in ("tag", "untag"):
        _tag_list(tags)


def _tag_list(tags: list[str] | str | None) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise CaseInputError('"tags" must be a list of strings')
    cleaned = [lifecycle.normalise_tag(t) for t in tags]
    cleaned = list(dict.fromkeys(t for t in cleaned if t))
    if not cleaned:
        raise CaseInputError("give at least one tag")
    return cleaned


def _note(note: Any) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str):
        raise CaseInputError('"note" must be text')
    note = note.strip()
    if len(note) > 10_000:
        raise CaseInputError("a note is at most 10000 characters")
    return note or None
