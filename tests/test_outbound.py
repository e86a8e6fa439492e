"""Outbound webhooks: subscriptions receive case events signed the Standard Webhooks way,
retried on schedule, with every attempt logged (issue 9). The receiver is a real HTTP
server on 127.0.0.1 (allowed by OUTBOUND_ALLOW here) that verifies each message with the
``standardwebhooks`` package."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from flask import has_app_context
from sqlalchemy.orm import selectinload

from app import clock
from app.events.record import record_event
from app.extensions import db
from app.net import UnsafeURL, check_url
from app.outbound import service
from app.outbound.models import OutboundMessage, Subscription
from app.tasks import Task, run_due, run_task
from tests.conftest import BOTH_DATABASES, add_case
from tests.outbound_support import Receiver


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def outbound_app(app):
    app.config.update(
        OUTBOUND_ALLOW="127.0.0.1", OUTBOUND_RETRY_SCHEDULE="0,0,0", OUTBOUND_TIMEOUT_SECONDS=5
    )
    return app


def subscribe(app, receiver: Receiver, path: str = "/hook", events=("case.*",)) -> str:
    with app.app_context():
        subscription, secret = service.create_subscription(
            {"url": receiver.url(path), "event_types": list(events)}
        )
        db.session.commit()
        receiver.secrets.append(secret)
        return subscription.id


def change_case(app, type_: str = "case.opened", title: str = "Disk full") -> tuple[int, str]:
    """A case and one case event of ``type_`` committed; returns (case id, event id).
    The payload matches the type's schema (app/events/schemas/)."""
    payloads = {
        "case.opened": {"title": title, "event_type": None},
        "case.resolved": {"title": title, "from": "open", "to": "resolved"},
    }
    with app.app_context():
        case = add_case(title, "open", clock.now())
        event = record_event(case, type_, actor="tests", payload=payloads[type_])
        db.session.commit()
        return case.id, event.id


def message_tasks(app, subscription_id: str) -> list[Task]:
    """The subscription's message tasks, oldest first, with their attempts loaded (usable
    inside or outside an app context)."""
    query = (
        db.select(Task)
        .options(selectinload(Task.attempt_log))
        .join(OutboundMessage, OutboundMessage.task_id == Task.id)
        .where(OutboundMessage.subscription_id == subscription_id)
        .order_by(Task.created_at)
    )
    if has_app_context():
        return db.session.scalars(query).all()
    with app.app_context():
        return db.session.scalars(query).all()


def attempts_of(client, subscription_id: str, **params) -> list[dict]:
    response = client.get(f"/api/subscriptions/{subscription_id}/attempts", query_string=params)
    assert response.status_code == 200, response.json
    return response.json["attempts"]


@BOTH_DATABASES
def test_a_case_change_arrives_signed_as_a_standard_webhook(outbound_app, receiver, client):
    subscription_id = subscribe(outbound_app, receiver)
    case_id, event_id = change_case(outbound_app)
    with outbound_app.app_context():
        assert run_due() == 1
    [message] = receiver.received
    assert message.verified, "the standardwebhooks package must verify the message"
    assert message.headers["webhook-id"] == event_id
    assert message.headers["content-type"] == "application/json"
    assert message.headers["user-agent"].startswith("Casehook")
    body = message.json
    assert body["type"] == "case.opened"
    assert body["data"]["event"]["id"] == event_id
    assert body["data"]["case"]["id"] == case_id
    assert body["timestamp"].startswith(str(clock.now().year))
    [attempt] = attempts_of(client, subscription_id)
    assert attempt["outcome"] == "succeeded" and attempt["status_code"] == 200
    assert attempt["response"] == "ok" and attempt["webhook_id"] == event_id


def test_event_filter_and_disabled_subscriptions(outbound_app, receiver):
    wanted = subscribe(outbound_app, receiver, "/resolved", events=("case.resolved",))
    subscribe(outbound_app, receiver, "/all", events=("*",))
    off = subscribe(outbound_app, receiver, "/off")
    with outbound_app.app_context():
        service.set_enabled(db.session.get(Subscription, off), False)
        db.session.commit()
    change_case(outbound_app, "case.opened")
    change_case(outbound_app, "case.resolved")
    with outbound_app.app_context():
        run_due()
    assert [r.json["type"] for r in receiver.at("/resolved")] == ["case.resolved"]
    assert sorted(r.json["type"] for r in receiver.at("/all")) == ["case.opened", "case.resolved"]
    assert receiver.at("/off") == []
    assert len(message_tasks(outbound_app, wanted)) == 1


def test_503_twice_then_200_is_three_attempts_and_one_delivery(outbound_app, receiver, client):
    receiver.script["/hook"] = [(503, {}, b"busy"), (503, {}, b"busy"), (200, {}, b"thanks")]
    subscription_id = subscribe(outbound_app, receiver)
    _, event_id = change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id}
    assert all(r.verified for r in receiver.received)
    delivered = [r for r in receiver.received if r is receiver.received[-1]]
    assert len(delivered) == 1  # one 2xx answer: the receiver's application got it once
    attempts = attempts_of(client, subscription_id)
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in reversed(attempts)] == [
        (1, "failed", 503),
        (2, "failed", 503),
        (3, "succeeded", 200),
    ]
    assert attempts[-1]["response"].startswith("HTTP 503: busy")
    [task] = message_tasks(outbound_app, subscription_id)
    assert task.status == "succeeded"
    assert len(attempts_of(client, subscription_id, outcome="failed")) == 2


def test_retry_after_on_429_is_honoured(outbound_app, receiver):
    receiver.script["/hook"] = [(429, {"Retry-After": "2"}, b"slow down"), (200, {}, b"ok")]
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = "3600"  # the schedule would wait an hour
    subscription_id = subscribe(outbound_app, receiver)
    change_case(outbound_app)
    with outbound_app.app_context():
        assert run_due() == 1
        [task] = message_tasks(outbound_app, subscription_id)
        wait = (task.run_after - task.attempt_log[0].finished_at).total_seconds()
        assert 1.5 <= wait <= 2.5
        assert run_due() == 0  # not due yet
        time.sleep(2.1)
        assert run_due() == 1
    assert len(receiver.received) == 2
    [task] = message_tasks(outbound_app, subscription_id)
    assert task.status == "succeeded"


def test_the_schedule_setting_spaces_retries(outbound_app, receiver):
    receiver.script["/hook"] = [(500, {}, b"oops")]
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = "100,200"
    subscription_id = subscribe(outbound_app, receiver)
    change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
        [task] = message_tasks(outbound_app, subscription_id)
        assert task.max_attempts == 3 and task.status == "queued"
        wait = (task.run_after - task.attempt_log[0].finished_at).total_seconds()
        assert 90 <= wait <= 110  # 100 s ± 10% jitter


def test_410_disables_the_subscription_at_once(outbound_app, receiver, client):
    receiver.script["/hook"] = [(410, {}, b"gone")]
    subscription_id = subscribe(outbound_app, receiver)
    change_case(outbound_app)
    change_case(outbound_app, title="second")
    with outbound_app.app_context():
        run_due()
    assert len(receiver.received) == 1  # no retry, and the second message is not sent
    body = client.get(f"/api/subscriptions/{subscription_id}").json
    assert body["enabled"] is False and "410" in body["disabled_reason"]
    assert body["health"]["state"] == "disabled"
    tasks = message_tasks(outbound_app, subscription_id)
    assert [t.status for t in tasks] == ["failed", "failed"]
    page = client.get(f"/subscriptions/{subscription_id}").get_data(as_text=True)
    assert "410 Gone" in page and "Disabled" in page
    # Further case changes queue nothing for it.
    change_case(outbound_app, title="third")
    assert len(message_tasks(outbound_app, subscription_id)) == 2


def test_a_301_is_a_failure_and_is_not_followed(outbound_app, receiver, client):
    receiver.script["/hook"] = [(301, {"Location": receiver.url("/elsewhere")}, b"")]
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = ""
    subscription_id = subscribe(outbound_app, receiver)
    change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
    assert receiver.at("/elsewhere") == []
    [attempt] = attempts_of(client, subscription_id)
    assert attempt["outcome"] == "failed" and attempt["status_code"] == 301
    assert "redirects are not followed" in attempt["response"]


def test_sustained_failure_disables_after_n_messages(outbound_app, receiver, client):
    receiver.script["/hook"] = [(500, {}, b"down")]
    outbound_app.config.update(OUTBOUND_RETRY_SCHEDULE="", OUTBOUND_DISABLE_AFTER_FAILURES=2)
    subscription_id = subscribe(outbound_app, receiver)
    for n in range(3):
        change_case(outbound_app, title=f"case {n}")
    with outbound_app.app_context():
        run_due()
    assert len(receiver.received) == 2
    body = client.get(f"/api/subscriptions/{subscription_id}").json
    assert body["enabled"] is False and "2 messages in a row failed" in body["disabled_reason"]


def test_failing_for_days_disables(outbound_app, receiver, client):
    receiver.script["/hook"] = [(500, {}, b"down")]
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = "0,0,0"
    subscription_id = subscribe(outbound_app, receiver)
    with outbound_app.app_context():
        db.session.get(Subscription, subscription_id).failing_since = clock.now() - timedelta(
            days=5, minutes=1
        )
        db.session.commit()
    change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
    assert len(receiver.received) == 1
    assert "5 days" in client.get(f"/api/subscriptions/{subscription_id}").json["disabled_reason"]


def test_a_hanging_receiver_times_out_without_delaying_another(outbound_app, receiver):
    outbound_app.config["OUTBOUND_TIMEOUT_SECONDS"] = 1.5
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = "60"
    receiver.delay["/hang"] = 4
    hanging = subscribe(outbound_app, receiver, "/hang")
    fast = subscribe(outbound_app, receiver, "/fast")
    change_case(outbound_app)
    change_case(outbound_app, title="second")
    hang_first, hang_second = message_tasks(outbound_app, hanging)
    fast_tasks = message_tasks(outbound_app, fast)
    outcome = {}

    def run_hanging():
        with outbound_app.app_context():
            outcome["hang"] = run_task(hang_first.id)

    worker = threading.Thread(target=run_hanging)
    started = time.monotonic()
    worker.start()
    while not receiver.at("/hang"):
        time.sleep(0.02)
    with outbound_app.app_context():
        # The hanging subscription's next message waits for its turn (one at a time)...
        assert run_task(hang_second.id) == "not claimed"
        # ...while another subscription's messages go out at once.
        # (the worker that sent the first runs the next in line at once: a chain)
        assert run_task(fast_tasks[0].id) == "succeeded"
        assert {t.status for t in message_tasks(outbound_app, fast)} == {"succeeded"}
    assert len(receiver.at("/fast")) == 2
    assert time.monotonic() - started < 1.2
    worker.join(10)
    assert outcome["hang"].startswith("retry in")
    with outbound_app.app_context():
        task = db.session.get(Task, hang_first.id)
        assert "timed out after 1.5 s" in task.last_error
        assert 1.3 <= task.attempt_log[0].latency_ms / 1000 < 3.5


def test_messages_to_one_subscription_go_in_event_order(outbound_app, receiver):
    subscription_id = subscribe(outbound_app, receiver)
    events = [change_case(outbound_app, title=f"case {n}")[1] for n in range(5)]
    tasks = message_tasks(outbound_app, subscription_id)
    with outbound_app.app_context():
        # A wake-up for a later message while an earlier one is due: not its turn.
        assert run_task(tasks[2].id) == "not claimed"
        assert run_task(tasks[0].id) == "succeeded"  # ...and the chain sends the rest
    assert len(receiver.received) == 5
    assert [r.headers["webhook-id"] for r in receiver.received] == events
    assert all(
        t.concurrency_key == f"outbound:{subscription_id}"
        for t in message_tasks(outbound_app, subscription_id)
    )


def test_replay_one_and_everything_failed_since(outbound_app, receiver, client):
    receiver.script["/hook"] = [(500, {}, b"down"), (500, {}, b"down"), (200, {}, b"ok")]
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = ""
    subscription_id = subscribe(outbound_app, receiver)
    before = clock.now() - timedelta(seconds=1)
    _, first = change_case(outbound_app, title="one")
    _, second = change_case(outbound_app, title="two")
    with outbound_app.app_context():
        run_due()
    assert len(receiver.received) == 2
    response = client.post(
        f"/api/subscriptions/{subscription_id}/replay", json={"since": before.isoformat()}
    )
    assert response.status_code == 202 and response.json["replayed"] == 2
    with outbound_app.app_context():
        run_due()
    assert [r.headers["webhook-id"] for r in receiver.received[2:]] == [first, second]
    response = client.post(f"/api/subscriptions/{subscription_id}/replay", json={"event_id": first})
    assert response.status_code == 202 and response.json["replayed"] == 1
    with outbound_app.app_context():
        run_due()
    assert receiver.received[-1].headers["webhook-id"] == first
    assert (
        client.post(
            f"/api/subscriptions/{subscription_id}/replay", json={"event_id": "nope"}
        ).status_code
        == 404
    )


def test_rotation_signs_with_both_secrets_for_a_day(outbound_app, receiver, client):
    subscription_id = subscribe(outbound_app, receiver)
    old = receiver.secrets.pop()
    response = client.post(f"/api/subscriptions/{subscription_id}/rotate-secret")
    new = response.json["secret"]
    assert new.startswith("whsec_") and new != old
    change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
    [message] = receiver.received
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Receiver(secrets=[secret]).verify(message.headers, message.body)


def test_api_create_list_patch_delete_and_test_event(
    outbound_app, receiver, client, anonymous_client, api_token
):
    viewer = {"Authorization": f"Bearer {api_token('viewer')}"}
    response = client.post(
        "/api/subscriptions",
        json={"url": receiver.url(), "event_types": ["case.*"], "description": "ops"},
    )
    assert response.status_code == 201
    created = response.json
    assert created["secret"].startswith("whsec_") and created["description"] == "ops"
    receiver.secrets.append(created["secret"])
    listed = anonymous_client.get("/api/subscriptions", headers=viewer).json["subscriptions"]
    assert [s["id"] for s in listed] == [created["id"]]
    assert listed[0]["secret"].keys() == {"env", "rotating_until"}  # never the secret itself
    refused = anonymous_client.post("/api/subscriptions", headers=viewer, json={})
    assert refused.status_code == 403
    patched = client.patch(
        f"/api/subscriptions/{created['id']}",
        json={"event_types": ["case.resolved"], "enabled": False},
    )
    assert patched.status_code == 200
    assert patched.json["event_types"] == ["case.resolved"] and not patched.json["enabled"]
    assert (
        client.patch(f"/api/subscriptions/{created['id']}", json={"secret": "x"}).status_code == 400
    )
    client.patch(f"/api/subscriptions/{created['id']}", json={"enabled": True})
    assert client.post(f"/api/subscriptions/{created['id']}/test").status_code == 202
    with outbound_app.app_context():
        run_due()
    [ping] = receiver.received
    assert ping.verified and ping.json["type"] == "test.ping"
    assert client.delete(f"/api/subscriptions/{created['id']}").status_code == 204
    assert client.get(f"/api/subscriptions/{created['id']}").status_code == 404


UNSAFE = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://10.0.0.1/hook", "private"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://100.64.0.1/hook", "cgnat"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
]


@pytest.mark.parametrize(("url", "reason"), UNSAFE)
def test_ssrf_refused_at_save_time_naming_the_class(app, client, url, reason):
    app.config["OUTBOUND_ALLOW"] = ""
    response = client.post("/api/subscriptions", json={"url": url, "event_types": ["case.*"]})
    assert response.status_code == 422
    assert response.json["error"] == "unsafe_url"
    assert f"{reason} address refused" in response.json["detail"]
    with pytest.raises(UnsafeURL) as refused:
        check_url(url)
    assert refused.value.reason == reason


def test_ssrf_allow_list_by_cidr_and_host():
    assert check_url("http://127.0.0.1:9/x", "127.0.0.0/8").address == "127.0.0.1"
    assert check_url("http://[::ffff:127.0.0.1]/", "127.0.0.1").address == "::ffff:7f00:1"
    assert check_url("http://localhost/", "localhost").address in ("127.0.0.1", "::1")
    assert check_url("http://[::1]/", "::1/128").address == "::1"
    assert check_url("http://8.8.8.8/").address == "8.8.8.8"
    with pytest.raises(UnsafeURL):
        check_url("http://10.0.0.1/", "127.0.0.1,localhost")
    for bad in ("ftp://example.com/", "http:///x", "http://user:pw@example.com/"):
        with pytest.raises(UnsafeURL) as refused:
            check_url(bad)
        assert refused.value.reason == "invalid"


def test_ssrf_refused_again_at_send_time(outbound_app, receiver, client):
    subscription_id = subscribe(outbound_app, receiver)
    outbound_app.config.update(OUTBOUND_ALLOW="", OUTBOUND_RETRY_SCHEDULE="")
    change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
    assert receiver.received == []
    [attempt] = attempts_of(client, subscription_id)
    assert attempt["outcome"] == "failed" and "loopback address refused" in attempt["response"]


def test_the_request_goes_to_the_address_that_was_checked(monkeypatch):
    """DNS rebinding: the host is resolved once and the request is pinned to that address."""
    from app import net

    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    monkeypatch.setattr(net, "_resolve", lambda host, port: next(answers))
    target = net.check_url("https://hooks.example.test:8443/in?x=1", "127.0.0.1")
    args = net.pinned_request_args(target)
    assert args["url"] == "https://127.0.0.1:8443/in?x=1"
    assert args["headers"] == {"Host": "hooks.example.test:8443"}
    assert args["extensions"] == {"sni_hostname": "hooks.example.test"}


def test_cli_create_and_list(outbound_app, receiver, runner):
    result = runner.invoke(
        args=["subscriptions", "create", "--url", receiver.url(), "--events", "case.*", "--json"]
    )
    assert result.exit_code == 0, result.output
    import json

    created = json.loads(result.output)
    assert created["secret"].startswith("whsec_") and created["event_types"] == ["case.*"]
    listed = runner.invoke(args=["subscriptions", "list"])
    assert created["id"] in listed.output and "healthy" in listed.output
    refused = runner.invoke(args=["subscriptions", "create", "--url", "http://10.0.0.1/"])
    assert refused.exit_code != 0 and "private" in refused.output


def test_console_create_show_and_viewer_reads(outbound_app, receiver, client, viewer_client):
    page = client.post("/subscriptions", data={"url": receiver.url(), "event_types": "case.*"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "whsec_" in html and "shown only this once" in html
    refused = client.post("/subscriptions", data={"url": "http://10.0.0.1/x", "event_types": "*"})
    assert refused.status_code == 422 and "private address refused" in refused.get_data(True)
    assert viewer_client.get("/subscriptions").status_code == 200
    [created] = client.get("/api/subscriptions").json["subscriptions"]
    page = viewer_client.get(f"/subscriptions/{created['id']}")
    assert page.status_code == 200 and "Rotate secret" not in page.get_data(as_text=True)
    admin_page = client.get(f"/subscriptions/{created['id']}?outcome=failed").get_data(True)
    assert "Rotate secret" in admin_page and "whsec_" not in admin_page
    assert client.get(f"/subscriptions/{created['id']}/attempts").status_code == 200
    assert viewer_client.post("/subscriptions", data={"url": receiver.url()}).status_code == 403


def test_the_forward_command_sends_the_deliverys_case_events(
    outbound_app, receiver, client, github, drain
):
    """A ``forward`` command on an endpoint sends the case events its delivery caused to a
    subscription, even one whose filter does not want them; with no case change, the
    delivery itself goes (``delivery.forwarded``)."""
    from tests.conftest import fixture_payload

    subscription_id = subscribe(outbound_app, receiver, events=("nothing.*",))
    base = f"/api/endpoints/{github.endpoint_id}/commands"
    forward = {
        "name": "forward-issues",
        "trigger": "issues.*",
        "action": "forward",
        "subscription": subscription_id,
        "priority": 2,
        "stop_after_match": False,
    }
    created = client.post(base, json=forward)
    assert created.status_code == 201, created.json
    assert created.json["subscription"] == subscription_id
    assert client.post(base, json={**forward, "name": "x", "subscription": ""}).status_code == 400
    # open-first opens the case (priority 1), then forward (2) sends what it wrote.
    client.post(
        base,
        json={
            "name": "open-first",
            "trigger": "issues.opened",
            "action": "open_case",
            "priority": 1,
            "stop_after_match": False,
        },
    )
    assert github.send("issues", fixture_payload("issues.opened")).status_code == 202
    assert drain() == 0
    with outbound_app.app_context():
        run_due()
    types = [r.json["type"] for r in receiver.received]
    assert "case.opened" in types and all(r.verified for r in receiver.received)
    opened = next(r for r in receiver.received if r.json["type"] == "case.opened")
    assert opened.json["data"]["event"]["delivery_id"] is not None
    # A delivery that changes no case goes itself.
    stars = {**forward, "name": "forward-stars", "trigger": "star.*"}
    assert client.post(base, json=stars).status_code == 201
    star = {
        "action": "created",
        "repository": {"full_name": "Codertocat/Hello-World"},
        "sender": {"login": "octocat"},
    }
    assert github.send("star", star).status_code == 202
    assert drain() == 0
    with outbound_app.app_context():
        run_due()
    forwarded = receiver.received[-1]
    assert forwarded.verified and forwarded.json["type"] == "delivery.forwarded"
    assert forwarded.json["data"]["payload"]["action"] == "created"
    assert forwarded.headers["webhook-id"].startswith("delivery_")


SUBSCRIPTIONS_YAML = """\
subscriptions:
  - id: ops-feed
    url: {url}
    event_types: ["case.*"]
    secret_env: CASEHOOK_TEST_OPS_SECRET
    description: Ops dashboard
"""


def test_config_as_code_subscriptions(outbound_app, receiver, client, tmp_path, monkeypatch):
    from app.webhooks.config_sync import ConfigError, sync

    secret = service.generate_secret()
    monkeypatch.setenv("CASEHOOK_TEST_OPS_SECRET", secret)
    receiver.secrets.append(secret)
    config = tmp_path / "config"
    config.mkdir()
    (config / "ops.yaml").write_text(SUBSCRIPTIONS_YAML.format(url=receiver.url()))
    with outbound_app.app_context():
        assert sync(config) == ["create subscription ops-feed (ops.yaml)"]
        assert sync(config) == []
    body = client.get("/api/subscriptions/ops-feed").json
    assert body["source"] == "config" and body["secret"]["env"] == "CASEHOOK_TEST_OPS_SECRET"
    assert client.patch("/api/subscriptions/ops-feed", json={"enabled": False}).status_code == 409
    change_case(outbound_app)
    with outbound_app.app_context():
        run_due()
    assert [r.verified for r in receiver.received] == [True]  # signed with the env secret
    (config / "ops.yaml").write_text(
        SUBSCRIPTIONS_YAML.format(url=receiver.url()).replace("Ops dashboard", "Ops")
    )
    with outbound_app.app_context():
        assert sync(config) == ["update subscription ops-feed: description"]
    (config / "ops.yaml").write_text(SUBSCRIPTIONS_YAML.format(url="http://10.0.0.1/x"))
    with outbound_app.app_context(), pytest.raises(ConfigError) as refused:
        sync(config)
    assert "ops.yaml line 2: subscription ops-feed: 10.0.0.1: private address refused" in str(
        refused.value
    )
    (config / "ops.yaml").write_text("subscriptions: []\n")
    with outbound_app.app_context():
        assert sync(config) == ["delete subscription ops-feed"]


def test_bad_api_input_is_a_clear_4xx(outbound_app, receiver, client):
    create = {"url": receiver.url(), "event_types": ["case.*"]}
    for body, status, error in [
        # Shapes: the schema (400 invalid_input naming the field) ...
        ({**create, "secret": 42}, 400, "invalid_input"),
        ({**create, "event_types": "bad pattern!"}, 400, "invalid_input"),
        ({**create, "url": 7}, 400, "invalid_input"),
        ({"url": receiver.url()}, 400, "invalid_input"),
        ({**create, "colour": "red"}, 400, "invalid_input"),
        # ... values: the subscription rules (422 invalid_<field>).
        ({**create, "secret": "whsec_short"}, 422, "invalid_secret"),
        ({**create, "event_types": ["bad pattern!"]}, 422, "invalid_event_types"),
        ({**create, "event_types": []}, 422, "invalid_event_types"),
        ({**create, "headers": {"webhook-id": "x"}}, 422, "invalid_headers"),
        ({**create, "url": "ftp://example.com/"}, 422, "invalid_url"),
    ]:
        response = client.post("/api/subscriptions", json=body)
        assert (response.status_code, response.json["error"]) == (status, error), body
    assert client.post("/api/subscriptions", data="nope").status_code == 400
    created = client.post("/api/subscriptions", json=create).json
    replay = f"/api/subscriptions/{created['id']}/replay"
    assert client.post(replay, json={"since": "yesterday"}).json["error"] == "invalid_since"
    assert client.post(replay, json={}).json["error"] == "missing_field"
    assert client.get(f"/api/subscriptions/{created['id']}/attempts?outcome=x").status_code == 400
    assert client.get("/api/subscriptions/nope").status_code == 404


def test_a_retry_falling_due_ahead_of_a_wake_up_gets_the_line_going(
    outbound_app, receiver, monkeypatch
):
    """The wake-up of a later message finds an earlier one (a retry) due ahead of it: it
    wakes that one, at the front of the queue, instead of leaving the line to stall."""
    import dataclasses

    from app.tasks import kinds
    from app.tasks.queue import get_queue

    unchained = dataclasses.replace(kinds.get_kind(service.SEND), chain_seconds=0)
    monkeypatch.setitem(kinds._kinds, service.SEND, unchained)
    outbound_app.config["OUTBOUND_RETRY_SCHEDULE"] = "1"
    receiver.script["/hook"] = [(503, {}, b"no"), (200, {}, b"ok")]
    subscription_id = subscribe(outbound_app, receiver)
    change_case(outbound_app, title="one")
    change_case(outbound_app, title="two")
    first, second = message_tasks(outbound_app, subscription_id)
    with outbound_app.app_context():
        get_queue().empty()
        assert run_task(first.id).startswith("retry in 1s")
        time.sleep(1.2)  # the first is due again, ahead of the second
        get_queue().empty()
        assert run_task(second.id) == "not claimed"
        assert [job.args[0] for job in get_queue().jobs] == [first.id]
