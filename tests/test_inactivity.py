"""Inactivity rules per endpoint: close (reason auto) or park cases idle for N hours, run by
the periodic sweeper; not for recently active cases; idempotent; malformed rules ignored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import clock
from app.cases import inactivity, service
from app.cases.inactivity import apply_inactivity_rules, rule_problem
from app.extensions import db
from app.webhooks.models import Endpoint
from tests.conftest import BOTH_DATABASES
from tests.test_case_actions import T0, load, make_case, make_endpoint


def set_rule(app, endpoint_id: str, rule) -> None:
    with app.app_context():
        endpoint = db.session.get(Endpoint, endpoint_id)
        endpoint.settings = {**(endpoint.settings or {}), "inactivity": rule}
        db.session.commit()


def run(app, at) -> list[tuple[int, str]]:
    with app.app_context(), clock.frozen_at(at):
        return apply_inactivity_rules(at)


@BOTH_DATABASES
def test_close_rule_closes_idle_live_cases_only(app):
    endpoint_id = make_endpoint(app, "acme/alerts")
    set_rule(app, endpoint_id, {"hours": 24, "action": "close"})
    idle_open = make_case(app, "Idle open", endpoint_id=endpoint_id, at=T0)
    idle_parked = make_case(app, "Idle parked", endpoint_id=endpoint_id, at=T0, status="parked")
    resolved = make_case(app, "Resolved", endpoint_id=endpoint_id, at=T0, status="resolved")
    recent = make_case(app, "Recent", endpoint_id=endpoint_id, at=T0 + timedelta(hours=10))
    no_rule = make_case(app, "Other endpoint", endpoint_id=make_endpoint(app), at=T0)

    # Not yet 24 hours: nothing happens.
    assert run(app, T0 + timedelta(hours=23, minutes=59)) == []

    done = run(app, T0 + timedelta(hours=25))
    assert sorted(done) == sorted([(idle_open, "closed"), (idle_parked, "closed")])
    closed = load(app, idle_open)
    assert (closed["status"], closed["closed_reason"]) == ("closed", "auto")
    assert closed["events"] == [
        ("case.closed", None,
         {"from": "open", "to": "closed", "reason": "auto", "rule": "inactivity", "hours": 24,
          "action": "close", "inactive_since": "2026-11-20T09:00:00+00:00"}),
    ]  # fmt: skip
    assert load(app, idle_parked)["closed_reason"] == "auto"
    for untouched, status in ((recent, "open"), (no_rule, "open"), (resolved, "resolved")):
        assert load(app, untouched)["status"] == status
        assert load(app, untouched)["events"] == []

    # Idempotent: running again changes nothing and writes nothing.
    assert run(app, T0 + timedelta(hours=25, minutes=1)) == []
    assert len(load(app, idle_open)["events"]) == 1
    # The recent case's turn comes 24 hours after its own last activity.
    assert run(app, T0 + timedelta(hours=34, minutes=1)) == [(recent, "closed")]


def test_any_activity_keeps_a_case_alive(app, make_user):
    endpoint_id = make_endpoint(app)
    set_rule(app, endpoint_id, {"hours": 4, "action": "close"})
    case_id = make_case(app, endpoint_id=endpoint_id, at=T0)
    make_user("engineer", "ann@example.com")
    with app.app_context(), clock.frozen_at(T0 + timedelta(hours=3)):
        from app.cases.models import Case

        service.handle(db.session.get(Case, case_id), "tag", tags=["db"], actor="ann@example.com")
        db.session.commit()
    assert run(app, T0 + timedelta(hours=5)) == []
    assert run(app, T0 + timedelta(hours=7, minutes=1)) == [(case_id, "closed")]


def test_park_rule_parks_idle_open_cases_and_leaves_escalated_ones(app):
    endpoint_id = make_endpoint(app)
    set_rule(app, endpoint_id, {"hours": 1.5, "action": "park"})
    idle = make_case(app, endpoint_id=endpoint_id, at=T0)
    escalated = make_case(app, endpoint_id=endpoint_id, at=T0, status="escalated")
    parked = make_case(app, endpoint_id=endpoint_id, at=T0, status="parked")
    recent = make_case(app, endpoint_id=endpoint_id, at=T0 + timedelta(hours=1))

    assert run(app, T0 + timedelta(hours=2)) == [(idle, "parked")]
    case = load(app, idle)
    assert case["status"] == "parked"
    assert case["events"] == [
        ("case.parked", None,
         {"from": "open", "to": "parked", "rule": "inactivity", "hours": 1.5, "action": "park",
          "inactive_since": "2026-11-20T09:00:00+00:00"}),
    ]  # fmt: skip
    # Parking counts the open time as active time.
    assert case["active_seconds"] == 2 * 3600
    for untouched, status in ((escalated, "escalated"), (parked, "parked"), (recent, "open")):
        assert load(app, untouched)["status"] == status
    # Idempotent, also much later: a parked case is not parked again.
    assert run(app, T0 + timedelta(days=3)) == [(recent, "parked")]
    assert len(load(app, idle)["events"]) == 1


def test_the_case_page_says_which_rule_acted(app, client):
    endpoint_id = make_endpoint(app)
    set_rule(app, endpoint_id, {"hours": 2, "action": "close"})
    case_id = make_case(app, endpoint_id=endpoint_id, at=T0)
    run(app, T0 + timedelta(hours=3))
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Casehook closed the case after 2 h without activity" in page


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (None, None),
        ({"hours": 24, "action": "close"}, None),
        ({"hours": 0.5, "action": "park"}, None),
        ("24h", "inactivity must be an object"),
        (
            {"hours": 0, "action": "close"},
            "inactivity.hours must be a number of hours greater than 0",
        ),
        ({"hours": -3, "action": "close"}, "greater than 0"),
        ({"hours": "24", "action": "close"}, "greater than 0"),
        ({"hours": True, "action": "close"}, "greater than 0"),
        ({"hours": 10_000, "action": "close"}, "at most 8760"),
        ({"hours": 24, "action": "delete"}, "inactivity.action must be one of close, park"),
        ({"hours": 24}, "inactivity.action must be one of close, park"),
        ({"hours": 24, "action": "close", "when": "x"}, "unknown keys: when"),
    ],
)
def test_rule_shape(rule, problem):
    found = rule_problem(rule)
    assert (found is None) if problem is None else (problem in found)


def test_malformed_rule_is_ignored_with_a_warning(app, monkeypatch):
    warnings = []
    monkeypatch.setattr(
        inactivity.log, "warning", lambda event, **fields: warnings.append((event, fields))
    )
    endpoint_id = make_endpoint(app)
    set_rule(app, endpoint_id, {"hours": "soon", "action": "close"})
    case_id = make_case(app, endpoint_id=endpoint_id, at=T0)
    assert run(app, T0 + timedelta(days=30)) == []
    assert load(app, case_id)["status"] == "open"
    assert warnings == [
        (
            "inactivity.rule_ignored",
            {
                "endpoint_id": endpoint_id,
                "problem": "inactivity.hours must be a number of hours greater than 0",
            },
        )
    ]


def test_the_supervisor_applies_the_rules(app):
    from app.tasks.supervisor import Supervisor

    endpoint_id = make_endpoint(app)
    set_rule(app, endpoint_id, {"hours": 1, "action": "close"})
    case_id = make_case(app, endpoint_id=endpoint_id, at=clock.now() - timedelta(hours=2))
    with app.app_context():
        assert Supervisor().tick()["inactivity"] == 1
    assert load(app, case_id)["closed_reason"] == "auto"


def test_a_failing_run_does_not_break_the_sweeper(app, monkeypatch):
    errors = []
    monkeypatch.setattr(inactivity.log, "error", lambda event, **f: errors.append((event, f)))

    def broken(now=None):
        raise RuntimeError("database went away")

    monkeypatch.setattr(inactivity, "apply_inactivity_rules", broken)
    with app.app_context():
        assert inactivity.sweep_inactivity() == 0
    assert errors == [("inactivity.failed", {"error": "RuntimeError: database went away"})]


def test_cli_applies_the_rules_at_a_given_time(app, runner):
    endpoint_id = make_endpoint(app)
    set_rule(app, endpoint_id, {"hours": 1, "action": "park"})
    case_id = make_case(app, endpoint_id=endpoint_id, at=T0)
    early = runner.invoke(args=["cases", "inactivity", "--at", str(T0.timestamp() + 1800)])
    assert "0 case(s) changed" in early.output
    result = runner.invoke(args=["cases", "inactivity", "--at", str(T0.timestamp() + 7200)])
    assert result.exit_code == 0, result.output
    assert f"parked case #{case_id}" in result.output
    assert load(app, case_id)["status"] == "parked"
