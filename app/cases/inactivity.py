"""Inactivity rules: close or park cases nobody has touched for N hours (SPEC C3).

An endpoint opts in with ``settings["inactivity"] = {"hours": N, "action": "close"|"park"}``
(N > 0, fractions allowed). The periodic sweeper (``app/webhooks/jobs.py`` ``sweep``) calls
``apply_inactivity_rules``; ``flask cases inactivity`` runs it by hand.

Last activity is the case's ``updated_at``, which deliveries, notes and every action move.

- ``close``: live cases (open, escalated, parked) idle for N hours are closed, reason ``auto``.
- ``park``: *open* cases idle for N hours are parked. Escalated cases are left alone: they are
  waiting for someone else, and parking them would drop them from the escalation queue.
  Parked cases stay parked (parking again would be a no-op).

Each change writes the lifecycle event (``case.closed``/``case.parked``) with
``{"rule": "inactivity", "hours", "action", "inactive_since"}`` in its payload. Running it
twice changes nothing the second time: a closed or parked case no longer matches.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app import clock
from app.cases import lifecycle
from app.cases.models import LIVE_STATUSES, Case
from app.extensions import db
from app.logs import log

RULE_ACTIONS = ("close", "park")
#: Statuses each action applies to (see the module docstring for why park skips escalated).
APPLIES_TO = {"close": LIVE_STATUSES, "park": ("open",)}


@dataclass(frozen=True)
class InactivityRule:
    hours: float
    action: str  # close | park

    def as_payload(self) -> dict:
        hours = int(self.hours) if float(self.hours).is_integer() else self.hours
        return {"rule": "inactivity", "hours": hours, "action": self.action}


def rule_problem(value: Any) -> str | None:
    """What is wrong with an ``inactivity`` setting, or None when it is valid (or absent).

    For forms and config validation too: ``{"hours": number > 0, "action": "close"|"park"}``.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        return 'inactivity must be an object like {"hours": 24, "action": "close"}'
    unknown = sorted(set(value) - {"hours", "action"})
    if unknown:
        return f"inactivity has unknown keys: {', '.join(unknown)} (use hours, action)"
    hours = value.get("hours")
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not hours > 0:
        return "inactivity.hours must be a number of hours greater than 0"
    if hours > 24 * 365:
        return "inactivity.hours must be at most 8760 (a year)"
    if value.get("action") not in RULE_ACTIONS:
        return f"inactivity.action must be one of {', '.join(RULE_ACTIONS)}"
    return None


def endpoint_rule(endpoint: Any) -> InactivityRule | None:
    """The endpoint's valid rule, or None (no rule, or a malformed one: logged, ignored)."""
    settings = endpoint.settings if isinstance(endpoint.settings, dict) else {}
    value = settings.get("inactivity")
    if value is None:
        return None
    problem = rule_problem(value)
    if problem:
        log.warning("inactivity.rule_ignored", endpoint_id=endpoint.id, problem=problem)
        return None
    return InactivityRule(hours=float(value["hours"]), action=value["action"])


def apply_inactivity_rules(now: datetime | None = None) -> list[tuple[int, str]]:
    """Close or park idle cases of every endpoint with a rule; commits once per endpoint.

    ``now`` defaults to ``clock.now()``. Returns ``[(case_id, "closed"|"parked"), ...]``.
    Rows are locked (``FOR UPDATE SKIP LOCKED`` on Postgres) so that a person acting on a
    case at the same moment wins: their change moves ``updated_at`` and the case no longer
    matches.
    """
    from app.webhooks.models import Endpoint

    # An explicit ``now`` (tests, ``--at``) also dates the events; else the real clock does.
    explicit = now is not None
    now = now or clock.now()
    done: list[tuple[int, str]] = []
    for endpoint in db.session.scalars(db.select(Endpoint).order_by(Endpoint.created_at)).all():
        rule = endpoint_rule(endpoint)
        if rule is None:
            continue
        cutoff = now - timedelta(hours=rule.hours)
        idle = db.session.scalars(
            db.select(Case)
            .where(
                Case.endpoint_id == endpoint.id,
                Case.status.in_(APPLIES_TO[rule.action]),
                Case.updated_at <= cutoff,
            )
            .order_by(Case.id)
            .with_for_update(skip_locked=True)
        ).all()
        for case in idle:
            payload = {**rule.as_payload(), "inactive_since": _iso(case.updated_at)}
            with clock.frozen_at(now) if explicit else nullcontext():
                if rule.action == "close":
                    lifecycle.transition(case, "closed", reason="auto", payload=payload)
                else:
                    lifecycle.transition(case, "parked", payload=payload)
            done.append((case.id, "closed" if rule.action == "close" else "parked"))
        db.session.commit()
        if idle:
            log.info(
                "inactivity.applied",
                endpoint_id=endpoint.id,
                action=rule.action,
                hours=rule.hours,
                case_ids=[case.id for case in idle],
            )
    return done


def sweep_inactivity() -> int:
    """For the periodic sweeper: apply the rules, log (not raise) a failure so the sweeper's
    other work and its next run are unaffected. Returns how many cases changed."""
    try:
        return len(apply_inactivity_rules())
    except Exception as exc:  # one bad run must not stop the sweeper chain
        db.session.rollback()
        log.error("inactivity.failed", error=f"{type(exc).__name__}: {exc}")
        return 0


def _iso(moment: datetime | None) -> str | None:
    from app.templating import as_utc

    return as_utc(moment).isoformat() if moment else None
