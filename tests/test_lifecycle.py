"""The case lifecycle: every transition, every refusal, time accounting, assign/tags/severity."""

from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.branches.service import ensure_root
from app.cases import lifecycle
from app.cases.lifecycle import CaseInputError, TransitionError
from app.cases.models import CASE_STATUSES, Case
from app.extensions import db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def case(app):
    with app.app_context():
        case = Case(title="Disk full", provider="github", status="open",
                    created_at=T0, updated_at=T0, status_changed_at=T0)  # fmt: skip
        db.session.add(case)
        db.session.commit()
        ensure_root(case)  # as the case.opened subscriber does
        db.session.commit()
        yield case


def _walk(case, *steps):
    for minutes, to, kwargs in steps:
        with clock.frozen_at(T0 + timedelta(minutes=minutes)):
            lifecycle.transition(case, to, **kwargs)


@pytest.mark.parametrize("source", CASE_STATUSES)
@pytest.mark.parametrize("target", CASE_STATUSES)
def test_every_transition_is_allowed_or_refused_with_the_alternatives(case, source, target):
    case.status = source
    if target in lifecycle.ALLOWED[source]:
        event = lifecycle.transition(case, target, reason="manual")
        assert case.status == target
        assert event.payload["from"] == source and event.payload["to"] == target
    else:
        with pytest.raises(TransitionError) as refused:
            lifecycle.transition(case, target, reason="manual")
        message = str(refused.value)
        assert message.startswith(f"a {source} case cannot become {target}; allowed: ")
        assert all(status in message for status in lifecycle.ALLOWED[source])
        assert case.status == source


def test_events_name_what_happened(case):
    names = []
    for to, kwargs in [
        ("parked", {}),
        ("escalated", {}),
        ("open", {}),
        ("resolved", {}),
        ("open", {}),
        ("closed", {"reason": "callback"}),
        ("open", {}),
    ]:
        names.append(lifecycle.transition(case, to, **kwargs).type)
    assert names == ["case.parked", "case.escalated", "case.reactivated", "case.resolved",
                     "case.reopened", "case.closed", "case.reopened"]  # fmt: skip


def test_closing_needs_a_known_reason(case):
    with pytest.raises(CaseInputError, match="manual, callback, auto"):
        lifecycle.transition(case, "closed", reason="bored")
    event = lifecycle.transition(case, "closed", reason="auto")
    assert (case.closed_reason, event.payload["reason"]) == ("auto", "auto")
    lifecycle.transition(case, "open")
    assert case.closed_reason is None and case.closed_at is None


def test_active_and_parked_seconds_accumulate(case):
    _walk(case, (10, "parked", {}), (40, "open", {}), (45, "escalated", {}),
          (50, "resolved", {}))  # fmt: skip
    assert (case.active_seconds, case.parked_seconds) == (20 * 60, 30 * 60)
    with clock.frozen_at(T0 + timedelta(hours=5)):
        assert lifecycle.live_seconds(case) == (20 * 60, 30 * 60)  # resolved: clock stopped
    _walk(case, (60, "open", {}))
    with clock.frozen_at(T0 + timedelta(minutes=70)):
        assert lifecycle.live_seconds(case) == (30 * 60, 30 * 60)


def test_assign_severity_and_tags(app, case):
    from app.accounts.models import User

    user = User(email="ann@example.com", password_hash="x", role="engineer")
    db.session.add(user)
    db.session.flush()
    assert lifecycle.assign(case, user, actor=user).payload == {"assignee": "ann@example.com"}
    assert case.assignee_id == user.id
    assert lifecycle.assign(case, None, actor=user).payload == {"assignee": None}

    event = lifecycle.set_severity(case, "critical", actor=user)
    assert (event.type, event.actor, event.payload) == (
        "case.severity_changed",
        "ann@example.com",
        {"from": "info", "to": "critical"},
    )
    with pytest.raises(CaseInputError, match="critical, error, warning, info"):
        lifecycle.set_severity(case, "meh", actor=user)

    lifecycle.set_tags(case, add=[" DB ", "prod", "db"], actor=user)
    assert case.tags == ["db", "prod"]
    lifecycle.set_tags(case, remove=["PROD"], actor=user)
    assert case.tags == ["db"]
    with pytest.raises(CaseInputError, match="40 characters"):
        lifecycle.set_tags(case, add=["x" * 41], actor=user)
    with pytest.raises(CaseInputError, match="at most 20"):
        lifecycle.set_tags(case, add=[f"t{i}" for i in range(20)], actor=user)
