"""Callbacks: an outside system (a ticketing tool, a runbook bot) updates a case.

``POST /api/cases/<id>/callback`` is authenticated by the callback token of the case's
endpoint (``Authorization: Bearer chcb_...``), not by a user: the system that was handed the
case says "done" (close, reason ``callback``), "it is back" (reopen) or adds a note. One token
per endpoint; Casehook stores only its SHA-256 (like API tokens: 256-bit random, so a plain
hash is enough) and prints it once (``flask endpoints callback-token ENDPOINT_ID``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from app import clock
from app.cases import lifecycle
from app.cases.lifecycle import CaseInputError
from app.cases.models import Case
from app.events.record import record_event

TOKEN_PREFIX = "chcb_"
#: What a callback may ask for. ``comment`` is an alias of ``note``.
CALLBACK_ACTIONS = ("close", "reopen", "note")
MAX_NOTE = 10_000
MAX_REFERENCE = 500


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_callback_token(endpoint: Any) -> str:
    """Give ``endpoint`` a new callback token (the previous one stops working) and return it
    in clear: the only time it is seen. The caller commits."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    endpoint.callback_token_hash = _hash(token)
    endpoint.callback_token_created_at = clock.now()
    return token


def revoke_callback_token(endpoint: Any) -> None:
    """Remove ``endpoint``'s callback token: callbacks for its cases answer 401. Caller commits."""
    endpoint.callback_token_hash = None
    endpoint.callback_token_created_at = None


def token_matches(endpoint: Any, token: str | None) -> bool:
    """True when ``token`` is ``endpoint``'s callback token (constant-time comparison)."""
    stored = getattr(endpoint, "callback_token_hash", None)
    if not stored or not token:
        return False
    return hmac.compare_digest(stored, _hash(token.strip()))


@dataclass
class CallbackResult:
    """What a callback did: ``changed`` (the case's status moved or a note was added) and the
    events written (``case.closed``/``case.reopened`` and/or ``case.callback``)."""

    changed: bool = False
    events: list = field(default_factory=list)
    outcome: str = ""


def apply_callback(case: Case, body: Any, *, endpoint: Any) -> CallbackResult:
    """Apply a callback ``body`` to ``case`` (authenticated for ``endpoint`` already).

    ``body``: ``{"action": "close"|"reopen"|"note", "note": str (or "comment"),
    "reference": str}`` — ``action`` defaults to ``note`` when there is a note; ``reference``
    is the caller's id for what it did (a ticket number or URL), kept in the events.

    Retried callbacks are harmless: closing a closed case or reopening a live one changes
    nothing (``changed`` False, no event) unless a note comes with it. A note is recorded as
    a ``case.callback`` event and counts as activity (``updated_at``). Raises
    ``CaseInputError`` (400) for a bad body and ``lifecycle.TransitionError`` (409) when the
    status cannot move (none today: every status may close or be reopened from closed).
    The caller commits.
    """
    if not isinstance(body, dict):
        raise CaseInputError('send a JSON object, e.g. {"action": "close", "note": "fixed"}')
    note = body.get("note", body.get("comment"))
    reference = body.get("reference")
    for name, value, limit in (("note", note, MAX_NOTE), ("reference", reference, MAX_REFERENCE)):
        if value is not None and not isinstance(value, str):
            raise CaseInputError(f'"{name}" must be text')
        if value is not None and len(value) > limit:
            raise CaseInputError(f'"{name}" is at most {limit} characters')
    note = (note or "").strip() or None
    reference = (reference or "").strip() or None
    action = body.get("action") or ("note" if note else None)
    if action == "comment":
        action = "note"
    if action not in CALLBACK_ACTIONS:
        raise CaseInputError(f'"action" must be one of {", ".join(CALLBACK_ACTIONS)}')
    if action == "note" and not note:
        raise CaseInputError('a "note" action needs the "note" text')

    actor = f"callback ({endpoint.name})"[:200]
    via = {"via": "callback", **({"reference": reference} if reference else {})}
    result = CallbackResult()
    if action == "close":
        if case.status == "closed":
            result.outcome = "already closed"
        else:
            result.events.append(
                lifecycle.transition(case, "closed", reason="callback", actor=actor, payload=via)
            )
            result.outcome = "closed"
    elif action == "reopen":
        if lifecycle.is_live(case):
            result.outcome = f"already {case.status}"
        else:
            result.events.append(lifecycle.transition(case, "open", actor=actor, payload=via))
            result.outcome = "reopened"
    if note:
        case.updated_at = clock.now()
        payload = {"action": action, "note": note, **via}
        result.events.append(record_event(case, "case.callback", actor=actor, payload=payload))
        result.outcome = f"{result.outcome}; note added" if result.outcome else "note added"
    result.changed = bool(result.events)
    return result
