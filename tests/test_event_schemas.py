"""Every event type the code can emit has a schema, and every event it writes matches it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.accounts.models import User
from app.cases.models import Case
from app.events import schemas
from app.events.clock import node_info
from app.events.models import CaseEvent
from app.events.record import InvalidEvent, record_event
from app.extensions import db
from tests.conftest import BOTH_DATABASES

APP = Path(__file__).resolve().parents[1] / "app"


def types_in_source() -> set[str]:
    """Event types written literally in the code: arguments of ``record_event`` and
    ``_record``, ``event_type=`` of transitions, the lifecycle's ``EVENT_FOR`` and its
    reopened/reactivated choice, and ``output.{status}`` for each decision."""
    found: set[str] = set()
    for path in APP.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                args = {
                    "record_event": node.args[1:2],
                    "_record": node.args[2:3],
                    "_event": node.args[1:2],  # app/agents/service.py
                }.get(name, [])
                args += [k.value for k in node.keywords if k.arg == "event_type"]
                found |= {a.value for a in args if isinstance(a, ast.Constant)}
            if isinstance(node, ast.Constant) and node.value in ("case.reopened",
                                                                 "case.reactivated"):  # fmt: skip
                found.add(node.value)
    from app.cases.lifecycle import EVENT_FOR
    from app.outputs.service import DECISIONS

    found |= set(EVENT_FOR.values()) | {f"output.{status}" for status in DECISIONS}
    return {t for t in found if isinstance(t, str) and "." in t}


def test_every_type_in_the_code_has_a_schema_and_every_schema_a_type():
    in_code = types_in_source()
    assert len(in_code) >= 20
    assert in_code == set(schemas.event_types())
    for type_, schema in schemas.all_schemas().items():
        Draft202012Validator.check_schema(schema)
        assert schema["properties"]["type"] == {"const": type_}


def test_the_schemas_are_served_as_published(client):
    body = client.get("/api/events/schemas").get_json()
    assert body["schemas"] == schemas.all_schemas()


@BOTH_DATABASES
def test_a_case_walked_through_everything_emits_every_type_valid(
    app, client, github, drain, tmp_path
):
    """Drive the real code down every path that writes an event; each stored event must
    match its schema, and together they cover every type."""
    from app.branches import service as branches
    from app.cases import service as cases
    from app.cases.callbacks import apply_callback
    from app.handoffs import service as handoffs
    from app.outputs import service as outputs
    from app.webhooks.models import Endpoint

    assert github.send_fixture("issues.opened").status_code in (200, 202)
    assert github.send_fixture("issues.edited").status_code in (200, 202)
    assert drain() == 0
    with app.app_context():
        admin = db.session.scalar(db.select(User).where(User.email == "admin@example.com"))
        case = db.session.scalar(db.select(Case))
        for action, options in (("acknowledge", {}), ("severity", {"severity": "critical"}),
                                ("tag", {"tags": ["db"]}), ("assign", {"user": "me"}),
                                ("close", {"reason": "manual"}), ("reopen", {})):  # fmt: skip
            cases.handle(case, action, actor=admin, **options)
            db.session.commit()
        handoffs.create_handoff(case, "park", "waiting for the vendor", actor=admin,
                                waiting_on="vendor")  # fmt: skip
        db.session.commit()
        cases.handle(case, "resume", actor=admin)
        db.session.commit()
        handoff = handoffs.create_handoff(case, "escalate", "needs the DBA", actor=admin)
        db.session.commit()
        handoffs.claim(handoff, admin)
        db.session.commit()
        apply_callback(case, {"note": "ticket filed", "reference": "T-1"},
                       endpoint=db.session.get(Endpoint, case.endpoint_id))  # fmt: skip
        db.session.commit()
        first, second = branches.fork(case, "two ideas", [{"label": "disk"}, {"label": "net"}],
                                      actor=admin)  # fmt: skip
        db.session.commit()
        branches.switch(case, first, actor=admin)
        branches.add_note(first, "disk is full", actor=admin)
        branches.set_status(first, "dead_end", "disk was fine", actor=admin)
        db.session.commit()
        branches.revive(first, second, "net logs show disk errors", actor=admin)
        db.session.commit()
        outputs.resolve_case(case, "fixed the disk", actor=admin)
        db.session.commit()
        written = outputs.write_outputs(case.id, actor=admin.email)
        outputs.edit_output(written[0], "edited notes", actor=admin)
        outputs.set_status(written[0], "approved", actor=admin)
        outputs.set_status(written[1], "rejected", actor=admin)
        db.session.commit()
        from app.outbound import service as outbound

        app.config["OUTBOUND_ALLOW"] = "127.0.0.1"
        subscription, _ = outbound.create_subscription(
            {"url": "http://127.0.0.1:9/hook", "event_types": ["nothing.*"]}
        )
        outputs.push_output(written[0], f"subscription:{subscription.id}", actor=admin)
        db.session.commit()
        # Agent runs: approved and run to the end, rejected, cancelled.
        from app.agents import service as agents
        from app.replies.tasks import request_reply
        from app.tasks import run_due
        from tests.agents_support import ECHO, write_agent

        agent = agents.create_agent({"name": "echo", "argv": write_agent(tmp_path, "echo", ECHO)})
        waiting = agents.request_run(case, agent, "hi", actor=admin.email, requires_approval=True)
        rejected = agents.request_run(case, agent, "no", actor=admin.email, requires_approval=True)
        db.session.commit()
        agents.approve_run(waiting, admin.email)
        agents.cancel_run(rejected, admin.email)
        db.session.commit()
        run_due()
        cancelled = agents.request_run(case, agent, "stop", actor=admin.email)
        db.session.commit()
        agents.cancel_run(cancelled, admin.email)
        db.session.commit()
        # A reply to the source; the endpoint has no reply token, so it settles as failed.
        request_reply(db.session.get(Endpoint, case.endpoint_id), case.source, "on it",
                      case=case, actor=admin.email)  # fmt: skip
        db.session.commit()
        run_due()

        events = db.session.scalars(db.select(CaseEvent).order_by(CaseEvent.seq)).all()
        for event in events:
            assert schemas.problems(event.to_dict()) == [], event.type
        emitted = {event.type for event in events}
        missing = set(schemas.event_types()) - emitted
        # case.escalated → claimed; the rest come from the steps above.
        assert missing == set(), f"no step emitted {sorted(missing)}"


def test_a_wrong_payload_raises_in_tests(app):
    from tests.test_event_stream import make_case

    case_id = make_case(app)
    with app.app_context():
        case = db.session.get(Case, case_id)
        record_event(case, "case.severity_changed", payload={"from": "error", "to": "loud"})
        with pytest.raises(InvalidEvent, match="payload/to"):
            db.session.commit()
        db.session.rollback()
        record_event(case, "case.no_such_type")
        with pytest.raises(InvalidEvent, match="no schema"):
            db.session.commit()


def test_a_wrong_payload_is_refused_logged_and_counted_in_production(app):
    from structlog.testing import capture_logs

    from tests.test_event_stream import make_case

    case_id = make_case(app)
    app.config["TESTING"] = False
    try:
        with app.app_context(), capture_logs() as logs:
            refused_before = node_info()["refused"]
            case = db.session.get(Case, case_id)
            case.title = "changed anyway"
            record_event(case, "case.assigned", payload={"assignee": 42})
            good = record_event(case, "case.assigned", payload={"assignee": None})
            db.session.commit()
            stored = db.session.scalars(db.select(CaseEvent)).all()
            assert [e.id for e in stored] == [good.id]  # the bad one is not stored
            assert db.session.get(Case, case_id).title == "changed anyway"
            assert node_info()["refused"] == refused_before + 1
    finally:
        app.config["TESTING"] = True
    assert [entry["event"] for entry in logs] == ["event.refused"]
    assert "payload/assignee" in logs[0]["problems"][0]


def test_the_quick_check_and_jsonschema_agree_on_every_schema():
    """``problems`` trusts jsonschema-rs's "valid" (the cheap check every stored event
    gets): on every schema, for good and bad envelopes and payloads, it says "valid"
    exactly when jsonschema finds nothing wrong."""
    ulid = "01M8KX3P0TR44VC4FK8VXWMYEC"
    values = [None, True, 0, -1, 7, 1.5, "", "x", ulid, "not-a-ulid", [], ["a"], {}, {"a": 1}]
    checked = 0
    for type_ in schemas.event_types():
        schema = schemas.event_schema(type_)
        envelope = {
            "id": ulid, "seq": 1, "type": type_, "case_id": 1, "node_id": ulid, "lamport": 1,
            "causation_id": None, "correlation_id": ulid, "delivery_id": None,
            "event_type": None, "actor": None, "payload": {}, "created_at": "2026-01-01T00:00:00Z",
        }  # fmt: skip
        documents = [envelope, {**envelope, "extra": 1}, {**envelope, "payload": None}]
        documents += [{**envelope, key: value} for key in envelope for value in values]
        payload = schema["properties"]["payload"]
        for name in payload.get("properties", {}):
            documents += [{**envelope, "payload": {name: value}} for value in values]
        required = {name: "x" for name in payload.get("required", [])}
        for name in payload.get("properties", {}):
            documents += [{**envelope, "payload": {**required, name: value}} for value in values]
        quick, full = schemas._quick(type_), Draft202012Validator(schema)
        for document in documents:
            assert quick.is_valid(document) == full.is_valid(document), (type_, document)
            assert (schemas.problems(document) == []) == full.is_valid(document)
            checked += 1
    assert checked > 5000
