"""Prometheus Alertmanager: the fixture through the real route and a real RQ worker, on SQLite
and Postgres, in both grouping modes; resolve → auto close; the Authorization checks."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from app.cases.models import Case
from app.extensions import db
from app.webhooks.models import Endpoint
from app.webhooks.providers import get_provider
from app.webhooks.providers.alertmanager import Alertmanager, fingerprint
from app.webhooks.providers.base import VerificationError
from tests.conftest import BOTH_DATABASES, FIXTURES
from tests.providers.conftest import (
    Sender,
    assert_duplicate,
    assert_refused,
    body_of,
    case_rows,
    delivery_statuses,
    stored_deliveries,
)

FIRING = FIXTURES / "alertmanager" / "firing.json"
GROUP_KEY = '{}:{alertname="InstanceDown"}'
FP_8081, FP_8082 = "f404ecabc8dd5cd7", "f8f08d4e32c61a9d"


class AlertmanagerSender(Sender):
    """Posts notifications the way Alertmanager's webhook receiver does (bearer or basic)."""

    provider, source = "alertmanager", "prometheus prod"

    def bearer(self) -> dict:
        return {"Authorization": f"Bearer {self.secret}"}

    def basic(self, user: str = "alertmanager") -> dict:
        token = base64.b64encode(f"{user}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def send(self, payload: dict | bytes, auth: dict | None = None):
        return self.post(
            body_of(payload),
            {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.27.0"},
            self.bearer() if auth is None else auth,
        )


@pytest.fixture
def alertmanager(app, client):
    return AlertmanagerSender(app, client)


@pytest.fixture
def grouped(app, client):
    return AlertmanagerSender(app, client, settings={"group_by": "groupKey"})


def firing() -> dict:
    return json.loads(FIRING.read_bytes())


def resolve(payload: dict, *which: int, ended: str = "2023-06-12T08:40:38.326Z") -> dict:
    """``payload`` with the alerts at indexes ``which`` resolved (all when none given); the
    group resolves when every alert has, as Alertmanager reports it."""
    payload = copy.deepcopy(payload)
    for index, alert in enumerate(payload["alerts"]):
        if not which or index in which:
            alert.update(status="resolved", endsAt=ended)
    statuses = [alert["status"] for alert in payload["alerts"]]
    payload["status"] = "firing" if "firing" in statuses else "resolved"
    payload["numFiring"] = statuses.count("firing")
    payload["numResolved"] = statuses.count("resolved")
    return payload


def _cases(app) -> dict:
    return case_rows(app, "status", "closed_reason", "severity", "title", "events")


@BOTH_DATABASES
def test_fixture_opens_one_case_per_alert_and_resolve_closes_each(app, alertmanager, drain):
    response = alertmanager.send(FIRING.read_bytes())
    assert response.status_code == 202
    derived = Alertmanager().delivery_id({}, firing())
    assert response.json == {"delivery_id": derived}
    assert derived.startswith("am:") and len(derived) == 3 + 64
    assert drain() == 0

    title = "InstanceDown: Instance localhost:{} down"
    opened = ["case.opened"]
    assert _cases(app) == {
        FP_8081: ("open", None, "critical", title.format(8081), opened),
        FP_8082: ("open", None, "critical", title.format(8082), opened),
    }
    [delivery] = stored_deliveries(app)
    assert delivery.event_type == "alert.firing"
    assert delivery.status == "processed"
    assert delivery.outcome == (
        "alertmanager.firing: opened a case; alertmanager.firing: opened a case"
    )
    assert delivery.headers["Authorization"] == "[redacted]"
    with app.app_context():
        case = db.session.scalars(db.select(Case).filter_by(dedup_key=FP_8081)).one()
        assert case.provider == "alertmanager"
        assert case.source_url is None  # generatorURL and externalURL are empty
        assert case.events[0].payload["summary"] == (
            "firing: localhost:8081 of job node has been down for more than 1 minute."
        )

    # Alertmanager retries (or repeats) the same notification: the same delivery.
    assert_duplicate(alertmanager.send(FIRING.read_bytes(), auth=alertmanager.basic()))
    assert drain() == 0
    assert len(stored_deliveries(app)) == 1

    # One alert resolves: its case closes; the other alert's case records the notification.
    assert alertmanager.send(resolve(firing(), 0)).status_code == 202
    assert drain() == 0
    cases = _cases(app)
    assert cases[FP_8081][:2] == ("closed", "auto")
    assert cases[FP_8081][4] == ["case.opened", "case.closed"]
    assert cases[FP_8082][:2] == ("open", None)
    assert cases[FP_8082][4] == ["case.opened", "case.updated"]

    # The whole group resolves.
    assert alertmanager.send(resolve(firing())).status_code == 202
    assert drain() == 0
    cases = _cases(app)
    assert cases[FP_8082][:2] == ("closed", "auto")
    assert cases[FP_8081][4] == ["case.opened", "case.closed", "case.updated"]
    outcomes = sorted(d.outcome for d in stored_deliveries(app))
    assert (
        "alertmanager.resolved: case already closed; alertmanager.resolved: closed the case (auto)"
        in outcomes
    )

    # They fire again (new startsAt): a new delivery, both cases reopen.
    refire = firing()
    for alert in refire["alerts"]:
        alert["startsAt"] = "2023-06-12T09:30:00Z"
    assert alertmanager.send(refire).status_code == 202
    assert drain() == 0
    cases = _cases(app)
    assert {cases[fp][0] for fp in (FP_8081, FP_8082)} == {"open"}
    assert {cases[fp][4][-1] for fp in (FP_8081, FP_8082)} == {"case.reopened"}
    assert len(stored_deliveries(app)) == 4


@BOTH_DATABASES
def test_group_mode_opens_one_case_per_group(app, grouped, drain):
    assert grouped.send(FIRING.read_bytes()).status_code == 202
    assert drain() == 0
    assert _cases(app) == {
        GROUP_KEY: ("open", None, "critical", "InstanceDown (2 alerts)", ["case.opened"])
    }
    with app.app_context():
        event = db.session.scalars(db.select(Case)).one().events[0]
        assert event.payload["summary"] == "firing: 2 firing, 0 resolved"

    # One alert resolved: the group still fires, its case records it.
    assert grouped.send(resolve(firing(), 1)).status_code == 202
    assert drain() == 0
    assert _cases(app)[GROUP_KEY][:2] == ("open", None)
    assert _cases(app)[GROUP_KEY][4] == ["case.opened", "case.updated"]

    assert grouped.send(resolve(firing())).status_code == 202
    assert drain() == 0
    assert _cases(app)[GROUP_KEY][:2] == ("closed", "auto")
    assert _cases(app)[GROUP_KEY][4] == ["case.opened", "case.updated", "case.closed"]
    assert {d.event_type for d in stored_deliveries(app)} == {"alert.firing", "alert.resolved"}


@BOTH_DATABASES
def test_both_modes_side_by_side_on_two_endpoints(app, client, drain):
    per_alert = AlertmanagerSender(app, client, settings={"group_by": "fingerprint"})
    per_group = AlertmanagerSender(app, client, settings={"group_by": "groupKey"})
    for sender in (per_alert, per_group):
        assert sender.send(FIRING.read_bytes()).status_code == 202
    assert drain() == 0
    with app.app_context():
        keys = {
            (case.endpoint_id, case.dedup_key) for case in db.session.scalars(db.select(Case)).all()
        }
        assert db.session.get(Endpoint, per_group.endpoint_id).settings == {"group_by": "groupKey"}
    assert keys == {
        (per_alert.endpoint_id, FP_8081),
        (per_alert.endpoint_id, FP_8082),
        (per_group.endpoint_id, GROUP_KEY),
    }


def test_alert_without_fingerprint_is_keyed_by_its_labels(app, alertmanager, drain):
    payload = firing()
    for alert in payload["alerts"]:
        del alert["fingerprint"]
    assert alertmanager.send(payload).status_code == 202
    reordered = copy.deepcopy(payload)
    reordered["alerts"][0]["labels"] = dict(reversed(payload["alerts"][0]["labels"].items()))
    reordered = resolve(reordered, 0)
    assert alertmanager.send(reordered).status_code == 202
    assert drain() == 0
    cases = _cases(app)
    assert len(cases) == 2
    assert all(key.startswith("labels:") for key in cases)
    assert sorted(case[0] for case in cases.values()) == ["closed", "open"]


def test_resolved_alert_never_seen_opens_nothing(app, alertmanager, drain):
    assert alertmanager.send(resolve(firing())).status_code == 202
    assert drain() == 0
    assert _cases(app) == {}
    assert stored_deliveries(app)[0].outcome == (
        "alertmanager.resolved: no case to close; alertmanager.resolved: no case to close"
    )


@pytest.mark.parametrize(
    "auth",
    [
        lambda s: s.bearer(),
        lambda s: {"Authorization": f"bearer   {s.secret}  "},
        lambda s: s.basic(),
        lambda s: s.basic(user=""),
        lambda s: s.basic(user="anyone at all"),
    ],
    ids=["bearer", "lower-case bearer", "basic", "basic without user", "basic any user"],
)
def test_accepted_credentials(app, alertmanager, auth):
    assert alertmanager.send(FIRING.read_bytes(), auth=auth(alertmanager)).status_code == 202


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


REFUSALS = {
    "missing": (lambda s: {}, "missing_header", ["Authorization"]),
    "empty": (lambda s: {"Authorization": "  "}, "missing_header", ["Authorization"]),
    "wrong bearer": (lambda s: {"Authorization": "Bearer nope"}, "bad_token", ["Bearer"]),
    "bearer without token": (lambda s: {"Authorization": "Bearer"}, "bad_token", ["Bearer"]),
    "wrong password": (
        lambda s: {"Authorization": "Basic " + _b64("alertmanager:nope")},
        "bad_token",
        ["Basic"],
    ),
    "secret as user name": (
        lambda s: {"Authorization": "Basic " + _b64(f"{s.secret}:")},
        "bad_token",
        ["Basic"],
    ),
    "basic without colon": (
        lambda s: {"Authorization": "Basic " + _b64(s.secret)},
        "bad_token",
        ["no password"],
    ),
    "basic not base64": (
        lambda s: {"Authorization": "Basic ***"},
        "bad_token",
        ["not base64"],
    ),
    "another scheme": (
        lambda s: {"Authorization": f"Token {s.secret}"},
        "bad_token",
        ["'Token'", "Bearer or Basic"],
    ),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refusals_answer_401_and_process_nothing(app, alertmanager, drain, case):
    make_auth, check, phrases = REFUSALS[case]
    response = alertmanager.send(FIRING.read_bytes(), auth=make_auth(alertmanager))
    [stored] = assert_refused(app, drain, response, check, *phrases)
    assert alertmanager.secret not in response.json["detail"]
    assert (stored.verdict, stored.status, stored.delivery_id) == ("unauthorized", "refused", None)
    assert stored.headers.get("Authorization", "[redacted]") == "[redacted]"


def test_null_and_odd_fields_never_crash_processing(app, alertmanager, drain):
    payloads = [
        {"status": "firing", "alerts": [{"labels": None, "annotations": None}, None, 3]},
        {"status": "firing", "alerts": None, "groupKey": None},
        {"status": None, "alerts": [{"status": None, "fingerprint": None}]},
        {"status": "firing", "alerts": [{"labels": {"alertname": 5}, "generatorURL": "x:y"}]},
        {},
    ]
    for payload in payloads:
        assert alertmanager.send(payload).status_code == 202, payload
    assert drain() == 0
    assert delivery_statuses(app) == {"processed"}
    with app.app_context():
        titles = set(db.session.scalars(db.select(Case.title)).all())
    assert titles == {"Alert", "5"}


# --- verify() and the other methods, without HTTP -------------------------------------------


def test_verify_without_http():
    provider = get_provider("alertmanager")
    assert isinstance(provider, Alertmanager)
    provider.verify("s3cret", {"authorization": "Bearer s3cret"}, b"{}")
    provider.verify("s3cret", {"AUTHORIZATION": "Basic " + _b64("am:s3cret")}, b"{}")
    provider.verify(
        "pass:with:colons", {"Authorization": "Basic " + _b64("u:pass:with:colons")}, b""
    )
    for header, check in [
        ({}, "missing_header"),
        ({"Authorization": "Bearer s3cre"}, "bad_token"),
        ({"Authorization": "Bearer s3cret2"}, "bad_token"),
        ({"Authorization": "Basic " + _b64("s3cret:am")}, "bad_token"),
        ({"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}, "bad_token"),
        ({"Authorization": "Digest s3cret"}, "bad_token"),
    ]:
        with pytest.raises(VerificationError) as refused:
            provider.verify("s3cret", header, b"{}")
        assert refused.value.check == check
        assert "Authorization" in refused.value.detail


def test_delivery_id_is_stable_and_tells_changes_apart():
    provider = Alertmanager()
    payload = firing()
    reordered = copy.deepcopy(payload)
    reordered["alerts"].reverse()
    reordered["receiver"] = "another receiver"  # not part of the id
    assert provider.delivery_id({}, payload) == provider.delivery_id({}, reordered)
    ids = {provider.delivery_id({}, payload)}
    for change in (
        lambda p: p.update(status="resolved"),
        lambda p: p.update(groupKey="{}:{}"),
        lambda p: p["alerts"][0].update(endsAt="2023-06-12T08:40:38.326Z"),
        lambda p: p["alerts"][0].update(startsAt="2023-06-12T09:00:00Z"),
        lambda p: p["alerts"][1].update(status="resolved"),
        lambda p: p["alerts"].pop(),
    ):
        changed = copy.deepcopy(payload)
        change(changed)
        ids.add(provider.delivery_id({}, changed))
    assert len(ids) == 7
    assert provider.delivery_id({}, None).startswith("am:")


def test_split_per_alert_and_per_group():
    provider = Alertmanager()
    payload = resolve(firing(), 1)
    pairs = provider.split("alert.firing", payload, {})
    assert [event_type for event_type, _ in pairs] == ["alert.firing", "alert.resolved"]
    first = pairs[0][1]
    assert first["fingerprint"] == FP_8081
    assert first["labels"]["instance"] == "localhost:8081"
    assert first["groupKey"] == GROUP_KEY
    assert first["receiver"] == "combo"
    assert first["commonLabels"]["alertname"] == "InstanceDown"
    assert "externalURL" in first
    assert "alerts" not in first
    assert provider.split("alert.firing", payload, {"group_by": "groupKey"}) == [
        ("alert.firing", payload)
    ]
    assert provider.split("alert.firing", {"alerts": None}, {}) == []
    assert provider.event_type({}, payload) == "alert.firing"
    assert provider.event_type({}, {}) == "alert.unknown"


def test_fingerprint_is_derived_from_sorted_labels():
    a = {"labels": {"alertname": "Down", "instance": "a:1"}}
    b = {"labels": {"instance": "a:1", "alertname": "Down"}}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a).startswith("labels:")
    assert fingerprint({"labels": {"alertname": "Down", "instance": "a:2"}}) != fingerprint(a)
    assert fingerprint({"fingerprint": "abc", **a}) == "abc"


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("CRITICAL", "critical"),
        ("error", "error"),
        ("major", "error"),
        ("high", "error"),
        ("warning", "warning"),
        ("minor", "warning"),
        ("info", "info"),
        ("page", "info"),
        (None, "info"),
    ],
)
def test_severity_from_the_severity_label(label, severity):
    alert = {"labels": {"alertname": "X", "severity": label}, "fingerprint": "f"}
    assert Alertmanager().case_facts("alert.firing", alert).severity == severity


@pytest.mark.parametrize(
    ("labels", "annotations", "title"),
    [
        (
            {"alertname": "Down", "instance": "a:1"},
            {"summary": "It is down"},
            "Down: It is down on a:1",
        ),
        ({"alertname": "Down"}, {"description": "Long\n  story"}, "Down: Long story"),
        ({"alertname": "Down", "instance": "a:1"}, {}, "Down on a:1"),
        ({}, {"title": "Instance a:1 down", "summary": None}, "Alert: Instance a:1 down"),
    ],
)
def test_titles(labels, annotations, title):
    alert = {"labels": labels, "annotations": annotations, "fingerprint": "f"}
    assert Alertmanager().case_facts("alert.firing", alert).title == title


def test_source_url_prefers_the_generator_url_and_refuses_other_schemes():
    provider = Alertmanager()
    alert = {"generatorURL": "http://prometheus:9090/graph?g0.expr=up", "externalURL": "http://am"}
    assert provider.case_facts("alert.firing", alert).source_url == alert["generatorURL"]
    alert["generatorURL"] = "javascript:alert(1)"
    assert provider.case_facts("alert.firing", alert).source_url == "http://am"


def test_a_delivery_with_two_alerts_shows_on_both_cases(app, alertmanager, drain, client):
    assert alertmanager.send(FIRING.read_bytes()).status_code == 202
    assert drain() == 0
    assert len(stored_deliveries(app)) == 1
    with app.app_context():
        case_ids = db.session.scalars(db.select(Case.id).order_by(Case.id)).all()
    assert len(case_ids) == 2
    for case_id in case_ids:  # delivery.case_id names only one of them
        page = client.get(f"/cases/{case_id}").get_data(as_text=True)
        assert 'Deliveries <span class="count">1</span>' in page, case_id
    # Each case shows its own alert from the shared delivery (the incident, app/cases/incident.py).
    first, second = (client.get(f"/cases/{i}").get_data(as_text=True) for i in case_ids)
    shown = {
        i: p.split('id="incident"')[1].split("</section>")[0]
        for i, p in zip(case_ids, (first, second), strict=True)
    }
    assert "localhost:8081 of job node has been down" in shown[case_ids[0]]
    assert "localhost:8082" not in shown[case_ids[0]]
    assert "localhost:8082 of job node has been down" in shown[case_ids[1]]
