"""The ingest route: every answer of SPEC §3 step 1, and nothing lost when Redis is down."""

import json
import uuid
from datetime import timedelta

import pytest

from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.tasks.queue import get_queue
from app.webhooks.inbox import pending_deliveries
from app.webhooks.models import Delivery, Endpoint
from tests.conftest import GITHUB_FIXTURES, fixture_payload


def _deliveries(app):
    with app.app_context():
        return db.session.scalars(db.select(Delivery).order_by(Delivery.received_at)).all()


def _queued(app) -> int:
    with app.app_context():
        return pending_deliveries()


def test_accepted_delivery_is_stored_enqueued_and_acknowledged(app, github):
    response = github.send_fixture("issues.opened", delivery_id="d-1")
    assert response.status_code == 202
    assert response.json == {"delivery_id": "d-1"}
    [stored] = _deliveries(app)
    assert stored.delivery_id == "d-1"
    assert stored.event_type == "issues.opened"
    assert stored.verdict == "accepted" and stored.status == "received"
    assert stored.headers["X-Github-Event"] == "issues"
    assert stored.body == (GITHUB_FIXTURES / "issues.opened.json").read_bytes()
    assert _queued(app) == 1


def test_body_is_stored_byte_for_byte(app, github):
    raw = b'{"action":"opened",  "issue": {"number": 7, "title": "spaces  kept"}}'
    assert github.send("issues", raw).status_code == 202
    assert _deliveries(app)[0].body == raw


def test_repeated_delivery_id_answers_200_and_is_not_processed_again(app, github, drain):
    assert github.send_fixture("issues.opened", delivery_id="same").status_code == 202
    again = github.send_fixture("issues.opened", delivery_id="same")
    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert len(_deliveries(app)) == 1
    assert _queued(app) == 1
    assert drain() == 0
    with app.app_context():
        assert db.session.scalar(db.select(Case.delivery_count)) == 1


def test_unknown_endpoint_is_404(client):
    response = client.post("/webhooks/github/nope", data=b"{}")
    assert response.status_code == 404
    assert response.json["error"] == "unknown_endpoint"
    assert "nope" in response.json["detail"]


def test_unknown_provider_is_404(client, github):
    response = client.post(f"/webhooks/fax/{github.endpoint_id}", data=b"{}")
    assert response.status_code == 404
    assert response.json["detail"]


def test_endpoint_of_another_provider_is_404_naming_the_right_url(client, github):
    from app.webhooks.providers import PROVIDERS

    other = next((name for name in PROVIDERS if name != "github"), None)
    if other is None:  # only GitHub so far: post to GitHub's route for a renamed endpoint
        with github.app.app_context():
            db.session.get(Endpoint, github.endpoint_id).provider = "gitlab"
            db.session.commit()
        response = client.post(github.path, data=b"{}")
    else:
        response = client.post(f"/webhooks/{other}/{github.endpoint_id}", data=b"{}")
    assert response.status_code == 404
    assert response.json["error"] in ("wrong_provider", "unknown_endpoint")


def test_disabled_endpoint_is_410(app, github):
    with app.app_context():
        db.session.get(Endpoint, github.endpoint_id).enabled = False
        db.session.commit()
    response = github.send_fixture("issues.opened")
    assert response.status_code == 410
    assert response.json["error"] == "endpoint_disabled"
    assert _deliveries(app) == []


def test_missing_signature_is_401_naming_the_header(app, github):
    response = github.client.post(
        github.path,
        data=b"{}",
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "x"},
    )
    assert response.status_code == 401
    assert response.json["error"] == "missing_header"
    assert "X-Hub-Signature-256" in response.json["detail"]
    [stored] = _deliveries(app)
    assert stored.verdict == "unauthorized" and stored.delivery_id is None
    assert _queued(app) == 0


def test_wrong_signature_is_401_and_processes_nothing(app, github):
    response = github.send(
        "issues", fixture_payload("issues.opened"), **{"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    assert response.status_code == 401
    assert response.json["error"] == "bad_signature"
    assert "X-Hub-Signature-256" in response.json["detail"]
    assert _queued(app) == 0


def test_forged_request_cannot_claim_a_real_delivery_id(app, github):
    forged = github.send(
        "issues", b"{}", delivery_id="real-id", **{"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    assert forged.status_code == 401
    assert github.send_fixture("issues.opened", delivery_id="real-id").status_code == 202


def test_body_over_the_limit_is_413(app, github):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = github.send("issues", b'{"pad": "' + b"x" * 2048 + b'"}')
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"
    assert "1024" in response.json["detail"]
    assert _deliveries(app) == []


def test_body_that_is_not_json_is_400_and_stored_rejected(app, github):
    response = github.send("issues", b"this is not json")
    assert response.status_code == 400
    assert response.json["error"] == "bad_payload"
    assert "JSON" in response.json["detail"]
    [stored] = _deliveries(app)
    assert stored.verdict == "rejected" and stored.body == b"this is not json"
    assert _queued(app) == 0


def test_json_that_is_not_an_object_is_400(github):
    response = github.send("issues", b"[1, 2]")
    assert response.status_code == 400
    assert "list" in response.json["detail"]


def test_non_utf8_body_is_400_not_500(github):
    assert github.send("issues", b"\xff\xfe\x00garbage\x80").status_code == 400


def test_missing_delivery_header_is_400(github):
    body = json.dumps({"action": "opened"}).encode()
    response = github.send("issues", body, **{"X-GitHub-Delivery": ""})
    assert response.status_code == 400
    assert "X-GitHub-Delivery" in response.json["detail"]


def test_form_encoded_github_payload_is_accepted(app, github):
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(fixture_payload("issues.opened"))}).encode()
    response = github.send("issues", body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 202
    assert _deliveries(app)[0].event_type == "issues.opened"


def test_ping_answers_200_and_opens_nothing(app, github, drain):
    response = github.send_fixture("ping")
    assert response.status_code == 200
    assert response.json["detail"] == "pong"
    assert _queued(app) == 0
    assert drain() == 0
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Case.id))) == 0
        assert _deliveries(app)[0].status == "processed"


def test_redis_down_still_stores_and_acknowledges_then_requeue_processes(
    app, github, drain, runner
):
    real_url = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    response = github.send_fixture("issues.opened", delivery_id="while-down")
    assert response.status_code == 202
    [stored] = _deliveries(app)
    assert stored.status == "received"

    app.config["REDIS_URL"] = real_url
    result = runner.invoke(args=["deliveries", "requeue"])
    assert result.exit_code == 0, result.output
    assert "Requeued 1" in result.output
    # A second requeue wakes the partition again; the delivery still runs once.
    assert "Requeued 1" in runner.invoke(args=["deliveries", "requeue"]).output
    assert drain() == 0
    assert _deliveries(app)[0].status == "processed"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Case.id))) == 1
        assert db.session.scalar(db.select(db.func.count(CaseEvent.id))) == 1


def test_requeue_with_redis_down_says_so(app, runner):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    with app.app_context():
        db.session.add(Endpoint(id="e1", provider="github", name="x", secret_encrypted=None))
        db.session.add(Delivery(endpoint_id="e1", delivery_id=str(uuid.uuid4()), body=b"{}"))
        db.session.commit()
    result = runner.invoke(args=["deliveries", "requeue"])
    assert result.exit_code == 1
    assert "Redis is unreachable" in result.output


def test_supervisor_wakes_deliveries_stored_while_redis_was_down(app, github, drain):
    from app.tasks.supervisor import Supervisor

    app.config["REDIS_URL"], real_url = "redis://127.0.0.1:1/0", app.config["REDIS_URL"]
    github.send_fixture("issues.opened")
    app.config["REDIS_URL"] = real_url
    app.config["SWEEP_AFTER_SECONDS"] = 0
    with app.app_context():
        assert get_queue().count == 0
        assert Supervisor().tick()["woken_partitions"] == 1
    assert drain() == 0
    assert _deliveries(app)[0].status == "processed"


def test_wrong_method_is_a_json_405(client, github):
    response = client.get(github.path)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"


def test_replay_copies_a_processed_delivery_and_runs_it_again(app, github, drain):
    from app.webhooks.ingest import replay_delivery

    github.send_fixture("issues.opened", delivery_id="orig")
    assert drain() == 0
    with app.app_context():
        original = db.session.scalars(db.select(Delivery)).one()
        first = replay_delivery(original)
        second = replay_delivery(original)
        assert (first.delivery_id, second.delivery_id) == ("orig#replay-1", "orig#replay-2")
        # Named by the delivery id people know (GitHub's), not by our primary key.
        assert first.verdict_detail == "replay of orig" != f"replay of {original.id}"
    assert drain() == 0
    with app.app_context():
        [case] = db.session.scalars(db.select(Case)).all()  # same case, not a second one
        assert case.delivery_count == 3


def test_replay_requeues_an_unfinished_delivery_and_refuses_refused_ones(app, github, drain):
    from app.webhooks.ingest import replay_delivery

    github.send("issues", b"not json")
    github.send_fixture("issues.opened")
    with app.app_context():
        get_queue().empty()  # as if Redis lost every job
        rejected, received = db.session.scalars(
            db.select(Delivery).order_by(Delivery.verdict.desc())
        ).all()
        assert replay_delivery(received) is received
        with pytest.raises(ValueError, match="rejected"):
            replay_delivery(rejected)
    assert drain() == 0
    assert {d.status for d in _deliveries(app)} == {"processed", "refused"}


def test_deliveries_share_one_wake_up_per_partition(app, github, drain):
    for _ in range(3):
        assert github.send_fixture("issues.edited").status_code == 202
    with app.app_context():
        assert (get_queue().count, pending_deliveries()) == (1, 3)
    assert drain() == 0
    with app.app_context():
        assert pending_deliveries() == 0
        assert db.session.scalar(db.select(Case.delivery_count)) == 3
    # The worker cleared the partition's flag when it took it: the next delivery wakes again.
    github.send_fixture("issues.edited")
    with app.app_context():
        assert get_queue().count == 1


def test_a_failing_delivery_is_retried_later_and_the_rest_go_on(app, github, drain, monkeypatch):
    from app import clock
    from app.tasks.supervisor import Supervisor
    from app.webhooks import processing

    real = processing.process_delivery
    github.send_fixture("issues.opened", delivery_id="bad")
    github.send_fixture("pull_request.opened", delivery_id="good")
    with app.app_context():
        bad_pk = db.session.scalar(db.select(Delivery.id).where(Delivery.delivery_id == "bad"))

    def flaky(delivery_pk, *args, **kwargs):
        if delivery_pk == bad_pk:
            raise RuntimeError("database went away")
        return real(delivery_pk, *args, **kwargs)

    monkeypatch.setattr(processing, "process_delivery", flaky)
    assert drain() == 0
    with app.app_context():
        statuses = dict(db.session.execute(db.select(Delivery.delivery_id, Delivery.status)).all())
        assert statuses == {"bad": "failed", "good": "processed"}
        bad = db.session.get(Delivery, bad_pk)
        assert bad.outcome == "failed: RuntimeError: database went away"
        assert bad.attempts == 1 and bad.next_attempt_at is not None
        # Not due yet: the supervisor leaves it alone.
        assert Supervisor().tick()["woken_partitions"] == 0
    monkeypatch.setattr(processing, "process_delivery", real)
    with clock.frozen_at(clock.now() + timedelta(seconds=11)):
        with app.app_context():
            assert Supervisor().tick()["woken_partitions"] == 1
        assert drain() == 0
    with app.app_context():
        assert db.session.get(Delivery, bad_pk).status == "processed"
