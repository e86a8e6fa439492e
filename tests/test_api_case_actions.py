"""The JSON API for working cases: ``POST /api/cases/<id>/handle`` per role, illegal
transitions (409 with what is allowed), ``GET /api/cases/summary``, the ``mine`` filter, and
the per-endpoint token-protected ``POST /api/cases/<id>/callback`` (and its CLI)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app import clock
from app.cases import callbacks
from app.extensions import db
from app.webhooks.models import Endpoint
from tests.conftest import BOTH_DATABASES
from tests.test_case_actions import T0, load, make_case, make_endpoint


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def engineer_token(api_token):
    return api_token("engineer")


def handle(client, case_id, token, **body):
    return client.post(f"/api/cases/{case_id}/handle", json=body, headers=bearer(token))


# --- handle ---------------------------------------------------------------------------------


def test_viewer_token_may_read_but_not_handle(app, anonymous_client, api_token):
    case_id = make_case(app)
    token = api_token("viewer")
    assert anonymous_client.get(f"/api/cases/{case_id}", headers=bearer(token)).status_code == 200
    response = handle(anonymous_client, case_id, token, action="close")
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert "needs the engineer role" in response.json["detail"]
    nobody = anonymous_client.post(f"/api/cases/{case_id}/handle", json={"action": "close"})
    assert nobody.status_code == 401 and nobody.json["error"] == "unauthorized"
    assert load(app, case_id)["status"] == "open"


@BOTH_DATABASES
def test_every_action_through_the_api(app, anonymous_client, make_user, engineer_token):
    make_user("engineer", "ann@example.com")
    case_id = make_case(app)
    client = anonymous_client

    assigned = handle(client, case_id, engineer_token, action="assign", user="me")
    assert assigned.status_code == 200
    me = assigned.json["case"]["assignee"]
    assert me.startswith("engineer-") and assigned.json["changed"] is True
    assert [e["type"] for e in assigned.json["events"]] == ["case.assigned"]
    assert assigned.json["events"][0]["actor"] == me

    steps = [
        ({"action": "assign", "user": "ANN@example.com"}, "assignee", "ann@example.com"),
        ({"action": "unassign"}, "assignee", None),
        ({"action": "severity", "severity": "critical"}, "severity", "critical"),
        ({"action": "tag", "tags": ["db", "Prod"]}, "tags", ["db", "prod"]),
        ({"action": "untag", "tags": ["prod"]}, "tags", ["db"]),
        ({"action": "close", "note": "dup"}, "closed_reason", "manual"),
        ({"action": "reopen"}, "status", "open"),
        ({"action": "close", "reason": "auto"}, "closed_reason", "auto"),
    ]
    for body, field, expected in steps:
        response = handle(client, case_id, engineer_token, **body)
        assert response.status_code == 200, (body, response.json)
        assert response.json["case"][field] == expected, body
    types = [e[0] for e in load(app, case_id)["events"]]
    assert types == ["case.assigned", "case.assigned", "case.assigned", "case.severity_changed",
                     "case.tagged", "case.tagged", "case.closed", "case.reopened",
                     "case.closed"]  # fmt: skip
    # Nothing to do: 200, changed false, no event.
    same = handle(client, case_id, engineer_token, action="severity", severity="critical")
    assert same.status_code == 200 and same.json == {**same.json, "changed": False, "events": []}


def test_illegal_transitions_are_409_with_what_is_allowed(app, anonymous_client, engineer_token):
    case_id = make_case(app, status="closed", closed_reason="manual")
    response = handle(anonymous_client, case_id, engineer_token, action="close")
    assert response.status_code == 409
    assert response.json == {
        "error": "illegal_transition",
        "detail": "a closed case cannot become closed; allowed: open",
        "status": "closed",
        "allowed": ["open"],
    }
    fresh = make_case(app)
    not_waiting = handle(anonymous_client, fresh, engineer_token, action="resume")
    assert not_waiting.status_code == 409 and not_waiting.json["status"] == "open"
    escalated = make_case(app, status="escalated")
    resumed = handle(anonymous_client, escalated, engineer_token, action="resume")
    assert resumed.status_code == 200 and resumed.json["case"]["status"] == "open"
    parked = make_case(app, status="parked")
    refused = handle(anonymous_client, parked, engineer_token, action="reopen")
    assert refused.status_code == 409
    assert refused.json["allowed"] == ["open", "escalated", "resolved", "closed"]
    assert "only resolved or closed cases can be reopened" in refused.json["detail"]
    assert load(app, parked)["events"] == []


@pytest.mark.parametrize(
    ("body", "detail", "field"),
    [
        # The schema (app/api/schemas/cases.py) names the field at fault ...
        ({"action": "explode"}, "action: Input should be 'acknowledge'", "action"),
        ({}, "action: Field required", "action"),
        ({"action": "tag", "tags": [1, 2]}, "tags.0: Input should be a valid string", "tags.0"),
        ({"action": "close", "note": 5}, "note: Input should be a valid string", "note"),
        ({"action": "close", "colour": "red"}, "colour: is not a field", "colour"),
        # ... the case service says what the values mean.
        ({"action": "severity", "severity": "meh"}, "severity must be one of critical", None),
        ({"action": "assign"}, 'say who: "me", or the email', None),
        ({"action": "assign", "user": "ghost@example.com"}, "no active user", None),
        ({"action": "tag", "tags": "not, a list"}, None, None),  # split on commas: fine
        ({"action": "tag", "tags": []}, "give at least one tag", None),
        ({"action": "close", "reason": "callback"}, "close reason must be manual or auto", None),
    ],
)
def test_bad_input_is_400(app, anonymous_client, engineer_token, body, detail, field):
    case_id = make_case(app)
    response = handle(anonymous_client, case_id, engineer_token, **body)
    if detail is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_input"
    assert detail in response.json["detail"]
    assert response.json.get("field") == field


def test_handle_needs_a_json_object_and_a_known_case(app, anonymous_client, engineer_token):
    case_id = make_case(app)
    not_json = anonymous_client.post(
        f"/api/cases/{case_id}/handle", data="close", headers=bearer(engineer_token)
    )
    assert not_json.status_code == 400 and "send a JSON object" in not_json.json["detail"]
    missing = handle(anonymous_client, 999, engineer_token, action="close")
    assert missing.status_code == 404 and missing.json["detail"] == "there is no case 999"


def test_session_authenticated_handle_needs_the_csrf_token(csrf_app, make_user):
    from tests.conftest import signed_in_client

    client = signed_in_client(csrf_app, make_user("engineer"))
    case_id = make_case(csrf_app)
    response = client.post(f"/api/cases/{case_id}/handle", json={"action": "close"})
    assert response.status_code == 400 and response.json["error"] == "csrf_failed"


def test_mine_filter_through_the_api(app, anonymous_client, engineer_token):
    mine, _other = make_case(app, "Mine"), make_case(app, "Other")
    handle(anonymous_client, mine, engineer_token, action="assign", user="me")
    body = anonymous_client.get("/api/cases?mine=1", headers=bearer(engineer_token)).json
    assert [c["id"] for c in body["cases"]] == [mine]


# --- summary --------------------------------------------------------------------------------


@BOTH_DATABASES
def test_summary_counts_and_oldest_open_age(app, anonymous_client, api_token):
    token = api_token("viewer")
    empty = anonymous_client.get("/api/cases/summary", headers=bearer(token)).json
    assert empty == {
        "by_status": {"open": 0, "escalated": 0, "parked": 0, "resolved": 0, "closed": 0},
        "by_provider": {},
        "by_severity": {"critical": 0, "error": 0, "warning": 0, "info": 0},
        "oldest_open_age_seconds": None,
        "total": 0,
    }
    make_case(app, at=T0 - timedelta(days=30), status="closed", closed_reason="auto")  # oldest
    make_case(app, at=T0 - timedelta(hours=5), status="parked", severity="critical")  # live
    make_case(app, at=T0 - timedelta(hours=2), provider="sentry", severity="error")
    make_case(app, at=T0 - timedelta(hours=1), status="escalated", provider="sentry")
    make_case(app, at=T0, status="resolved", severity="info")
    with clock.frozen_at(T0):
        body = anonymous_client.get("/api/cases/summary", headers=bearer(token)).json
    assert body == {
        "by_status": {"open": 1, "escalated": 1, "parked": 1, "resolved": 1, "closed": 1},
        "by_provider": {"github": 3, "sentry": 2},
        "by_severity": {"critical": 1, "error": 1, "warning": 2, "info": 1},
        "oldest_open_age_seconds": 5 * 3600,
        "total": 5,
    }
    sentry = anonymous_client.get("/api/cases/summary?provider=sentry", headers=bearer(token))
    assert sentry.json["total"] == 2 and sentry.json["by_provider"] == {"sentry": 2}


# --- callback -------------------------------------------------------------------------------


@pytest.fixture
def endpoints(app):
    """Two endpoints with callback tokens: ``{"a": (id, token), "b": (id, token)}``."""
    result = {}
    for key in ("a", "b"):
        endpoint_id = make_endpoint(app, f"acme/{key}")
        with app.app_context():
            token = callbacks.issue_callback_token(db.session.get(Endpoint, endpoint_id))
            db.session.commit()
        result[key] = (endpoint_id, token)
    return result


def callback(client, case_id, token=None, **body):
    headers = bearer(token) if token else {}
    return client.post(f"/api/cases/{case_id}/callback", json=body, headers=headers)


@BOTH_DATABASES
def test_callback_closes_with_reason_callback_and_records_the_note(
    app, anonymous_client, endpoints
):
    endpoint_id, token = endpoints["a"]
    case_id = make_case(app, endpoint_id=endpoint_id)
    response = callback(
        anonymous_client, case_id, token, action="close", note="Fixed in v2.3", reference="T-81"
    )
    assert response.status_code == 200, response.json
    assert response.json["changed"] is True and response.json["outcome"] == "closed; note added"
    assert response.json["case"]["status"] == "closed"
    assert response.json["case"]["closed_reason"] == "callback"
    events = load(app, case_id)["events"]
    assert events == [
        ("case.closed", "callback (acme/a)",
         {"from": "open", "to": "closed", "reason": "callback", "via": "callback",
          "reference": "T-81"}),
        ("case.callback", "callback (acme/a)",
         {"action": "close", "note": "Fixed in v2.3", "via": "callback", "reference": "T-81"}),
    ]  # fmt: skip

    # A retried callback changes nothing.
    retried = callback(anonymous_client, case_id, token, action="close")
    assert retried.status_code == 200
    assert (retried.json["changed"], retried.json["outcome"]) == (False, "already closed")
    assert len(load(app, case_id)["events"]) == 2


def test_callback_reopen_and_note(app, anonymous_client, endpoints):
    endpoint_id, token = endpoints["a"]
    case_id = make_case(app, endpoint_id=endpoint_id, status="resolved")
    reopened = callback(anonymous_client, case_id, token, action="reopen")
    assert reopened.json["case"]["status"] == "open" and reopened.json["outcome"] == "reopened"
    again = callback(anonymous_client, case_id, token, action="reopen")
    assert again.json["changed"] is False and again.json["outcome"] == "already open"
    noted = callback(anonymous_client, case_id, token, comment="Customer confirmed")
    assert noted.json["outcome"] == "note added"
    types = [e[0] for e in load(app, case_id)["events"]]
    assert types == ["case.reopened", "case.callback"]
    assert load(app, case_id)["events"][-1][2]["note"] == "Customer confirmed"


def test_callback_note_is_on_the_timeline_escaped(app, anonymous_client, client, endpoints):
    endpoint_id, token = endpoints["a"]
    case_id = make_case(app, endpoint_id=endpoint_id)
    callback(anonymous_client, case_id, token, note="<script>alert(1)</script> done")
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "case.callback" in page and "callback (acme/a) added a note" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; done" in page


def test_callback_refuses_missing_wrong_and_other_endpoints_tokens(
    app, anonymous_client, endpoints, api_token
):
    endpoint_id, _token = endpoints["a"]
    _other_endpoint, other_token = endpoints["b"]
    case_id = make_case(app, endpoint_id=endpoint_id)
    for token in (None, "chcb_wrong", other_token, api_token("admin")):
        response = callback(anonymous_client, case_id, token, action="close")
        assert response.status_code == 401, token
        assert response.json["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    basic = anonymous_client.post(
        f"/api/cases/{case_id}/callback", json={"action": "close"},
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )  # fmt: skip
    assert basic.status_code == 401
    assert load(app, case_id)["status"] == "open" and load(app, case_id)["events"] == []
    # A case without an endpoint takes no callbacks at all.
    orphan = make_case(app)
    assert callback(anonymous_client, orphan, other_token, action="close").status_code == 401


def test_callback_bad_body_unknown_case_disabled_endpoint(app, anonymous_client, endpoints):
    endpoint_id, token = endpoints["a"]
    case_id = make_case(app, endpoint_id=endpoint_id)
    assert callback(anonymous_client, 999, token, action="close").status_code == 404
    for body, detail, field in [
        ({"action": "explode"}, "action: Input should be 'close', 'reopen', 'note'", "action"),
        ({}, '"action" must be one of', None),
        ({"action": "note"}, 'a "note" action needs the "note" text', None),
        ({"action": "close", "note": ["x"]}, "note: Input should be a valid string", "note"),
        ({"action": "close", "reference": "x" * 501}, "reference: String should have at most",
         "reference"),
    ]:  # fmt: skip
        response = callback(anonymous_client, case_id, token, **body)
        assert response.status_code == 400, body
        assert detail in response.json["detail"]
        assert response.json.get("field") == field
    with app.app_context():
        db.session.get(Endpoint, endpoint_id).enabled = False
        db.session.commit()
    disabled = callback(anonymous_client, case_id, token, action="close")
    assert disabled.status_code == 410 and "is disabled" in disabled.json["detail"]


def test_callback_needs_no_csrf_token_even_with_csrf_on(csrf_app, endpoints):
    endpoint_id, token = endpoints["a"]
    case_id = make_case(csrf_app, endpoint_id=endpoint_id)
    response = callback(csrf_app.test_client(), case_id, token, action="close")
    assert response.status_code == 200
    assert response.json["case"]["closed_reason"] == "callback"


def test_callback_token_cli_prints_once_stores_a_hash_and_revokes(app, runner, anonymous_client):
    endpoint_id = make_endpoint(app)
    case_id = make_case(app, endpoint_id=endpoint_id)
    result = runner.invoke(args=["endpoints", "callback-token", endpoint_id])
    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[1].strip()
    assert token.startswith("chcb_") and "/api/cases/CASE_ID/callback" in result.output
    with app.app_context():
        endpoint = db.session.get(Endpoint, endpoint_id)
        assert endpoint.callback_token_hash and token not in endpoint.callback_token_hash
        assert len(endpoint.callback_token_hash) == 64

    # A new token replaces the old one.
    fresh = json.loads(
        runner.invoke(args=["endpoints", "callback-token", endpoint_id, "--json"]).output
    )
    assert fresh["endpoint_id"] == endpoint_id and fresh["token"] != token
    assert callback(anonymous_client, case_id, token, note="x").status_code == 401
    assert callback(anonymous_client, case_id, fresh["token"], note="x").status_code == 200

    revoked = runner.invoke(args=["endpoints", "callback-token", endpoint_id, "--revoke"])
    assert "Revoked" in revoked.output
    assert callback(anonymous_client, case_id, fresh["token"], note="x").status_code == 401
    missing = runner.invoke(args=["endpoints", "callback-token", "nope"])
    assert missing.exit_code == 1 and "there is no endpoint nope" in missing.output
