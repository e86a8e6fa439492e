"""Acknowledge (triggered → acknowledged): the domain rule, the case event, the API's
``handle`` action, the console action and bulk action, the ``ack`` filter and the default
"urgency" sort (unacknowledged live cases first, then severity, then age)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import clock
from app.cases import lifecycle, service
from app.cases.lifecycle import TransitionError
from app.cases.models import Case
from app.cases.queries import CaseFilters, search_cases
from app.extensions import db
from tests import test_case_actions
from tests.conftest import BOTH_DATABASES
from tests.test_api_case_actions import bearer
from tests.test_case_actions import HX, act, bulk, load, make_case, rows

table = test_case_actions.table  # the five-case fixture


def test_acknowledge_records_who_and_when_once_and_writes_the_event(app):
    case_id = make_case(app)
    with app.app_context():
        case = db.session.get(Case, case_id)
        event = lifecycle.acknowledge(case, actor="jane@example.com")
        db.session.commit()
        assert event.type == "case.acknowledged" and event.actor == "jane@example.com"
        first = case.acknowledged_at
        assert first is not None and case.acknowledged_by == "jane@example.com"
        # A second acknowledgement changes nothing: the first one counts.
        assert lifecycle.acknowledge(case, actor="bob@example.com") is None
        assert case.acknowledged_by == "jane@example.com" and case.acknowledged_at == first
    events = [e[0] for e in load(app, case_id)["events"]]
    assert events.count("case.acknowledged") == 1


def test_a_closed_case_cannot_be_acknowledged_and_a_reopened_one_is_unacknowledged(app):
    closed_id = make_case(app, status="closed", closed_reason="manual")
    open_id = make_case(app)
    with app.app_context():
        with pytest.raises(TransitionError, match="closed case cannot be acknowledged"):
            lifecycle.acknowledge(db.session.get(Case, closed_id), actor="jane@example.com")
        case = db.session.get(Case, open_id)
        service.handle(case, "acknowledge", actor="jane@example.com")
        lifecycle.transition(case, "resolved", actor="jane@example.com")
        lifecycle.transition(case, "open", actor="jane@example.com")
        db.session.commit()
        # It came back: triggered again, nobody has seen this occurrence yet.
        assert case.acknowledged_at is None and case.acknowledged_by is None


def test_api_handle_acknowledge(app, anonymous_client, api_token):
    case_id = make_case(app)
    token = api_token("engineer")
    response = anonymous_client.post(
        f"/api/cases/{case_id}/handle", json={"action": "acknowledge"}, headers=bearer(token)
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert body["changed"] is True
    assert body["events"][0]["type"] == "case.acknowledged"
    assert body["case"]["acknowledged_by"] and body["case"]["acknowledged_at"]
    again = anonymous_client.post(
        f"/api/cases/{case_id}/handle", json={"action": "acknowledge"}, headers=bearer(token)
    )
    assert again.status_code == 200 and again.json["changed"] is False
    closed = make_case(app, status="closed", closed_reason="manual")
    refused = anonymous_client.post(
        f"/api/cases/{closed}/handle", json={"action": "acknowledge"}, headers=bearer(token)
    )
    assert refused.status_code == 409


def test_console_acknowledge_button_and_badge(app, engineer_client):
    case_id = make_case(app)
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'name="action" value="acknowledge"' in page
    response = act(engineer_client, case_id, action="acknowledge")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Acknowledged." in text and 'id="case-ack"' in text
    assert "engineer@example.com" in text
    assert load(app, case_id)["acknowledged_by"] == "engineer@example.com"
    # Acknowledged: the button is gone from the actions.
    assert 'value="acknowledge"' not in engineer_client.get(f"/cases/{case_id}").get_data(
        as_text=True
    )


@BOTH_DATABASES
def test_bulk_acknowledge_and_the_ack_filter(app, table):
    ids, client, _ = table
    response = bulk(client, [ids["free"], ids["ann"], ids["closed"]], "acknowledge")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Acknowledged 2 cases." in text and f"#{ids['closed']} refused" in text
    acked = rows(client.get("/cases?ack=yes", headers=HX))
    assert sorted(acked) == sorted([ids["free"], ids["ann"]])
    unacked = rows(client.get("/cases?ack=no", headers=HX))
    assert set(unacked) == {ids["mine-open"], ids["mine-parked"], ids["closed"]}
    # The filter stays in the URL and the table marks acknowledged rows.
    page = client.get("/cases?ack=yes").get_data(as_text=True)
    assert '<option value="yes" selected>' in page
    assert "badge ack" in page


def test_urgency_sort_is_the_default(app, make_user):
    now = clock.now()
    at = {"at": now - timedelta(hours=3)}
    ids = {
        "info-old": make_case(app, "info old", severity="info", **at),
        "critical-new": make_case(app, "critical new", severity="critical"),
        "critical-old": make_case(app, "critical old", severity="critical", **at),
        "critical-acked": make_case(app, "critical acked", severity="critical",
                                    acknowledged_at=now, acknowledged_by="x@example.com"),
        "error": make_case(app, "error", severity="error"),
        "closed-critical": make_case(app, "closed critical", severity="critical",
                                     status="closed", closed_reason="manual"),
    }  # fmt: skip
    with app.app_context():
        order = [c.id for c in search_cases(CaseFilters.from_args({}), 25)[0]]
        by_update = [c.id for c in search_cases(CaseFilters.from_args({"sort": "updated"}), 25)[0]]
    expected = ["critical-old", "critical-new", "error", "info-old", "critical-acked",
                "closed-critical"]  # fmt: skip
    assert order == [ids[name] for name in expected]
    assert by_update != order
    assert CaseFilters.from_args({"sort": "urgency"}).as_query() == {}


def test_page_size_choice_in_the_url(app, engineer_client):
    for n in range(30):
        make_case(app, f"case {n}")
    assert len(rows(engineer_client.get("/cases", headers=HX))) == 25
    assert len(rows(engineer_client.get("/cases?size=50", headers=HX))) == 30
    assert len(rows(engineer_client.get("/cases?size=7", headers=HX))) == 25  # not a choice
    page = engineer_client.get("/cases?size=50").get_data(as_text=True)
    assert '<option value="50" selected>' in page


def test_api_list_takes_the_ack_filter_and_urgency_sort(app, anonymous_client, api_token):
    acked = make_case(app, "acked", severity="critical", acknowledged_at=clock.now(),
                      acknowledged_by="x@example.com")  # fmt: skip
    waiting = make_case(app, "waiting", severity="info")
    token = api_token("viewer")
    listed = anonymous_client.get("/api/cases", headers=bearer(token)).json["cases"]
    assert [c["id"] for c in listed] == [waiting, acked]  # unacknowledged first, even if info
    only = anonymous_client.get("/api/cases?ack=yes", headers=bearer(token)).json["cases"]
    assert [c["id"] for c in only] == [acked] and only[0]["acknowledged_by"] == "x@example.com"
