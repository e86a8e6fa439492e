"""Schemathesis against ``/api/openapi.json``: every operation of the JSON API, called with
generated input and an admin's bearer token, never answers 5xx, always answers what its schema
says (body and content type), and refuses (4xx) whatever input its schema does not allow.

In-process (the WSGI app) over a real SQLite file and the real Redis, seeded through the real
routes: a case with branches, a note and an attachment, a parked case, a resolved case with
its outputs, an agent and a run awaiting approval, an endpoint with a delivery, a
subscription. Generated ids rarely name a row, so each operation gets valid input with the
seeded ids in its path (this is what reaches the 2xx answers), then invalid input anywhere,
path included. Hypothesis runs derandomized (a fixed seed) with a bounded number of examples
per operation and mode. ``SCHEMATHESIS_ONLY=<text>`` runs only the operations whose
"METHOD /path" contains it.
"""

from __future__ import annotations

import io
import os
import uuid
from collections import Counter
from typing import Any

import pytest
from flask_migrate import upgrade
from hypothesis import HealthCheck, Phase, given, settings

from app import clock, create_app, net
from app.accounts.models import User
from app.accounts.service import create_token
from app.extensions import db
from app.tasks import run_due
from app.tasks.queue import get_queue
from tests.conftest import GitHubSender, add_case

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
)
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

pytestmark = pytest.mark.slow

#: Examples per operation and mode: bounded so that the whole API runs in about a minute on
#: two cores; the fixed seed makes a failure reproducible.
EXAMPLES = 12
#: No 5xx; each answer matches its schema and content type; invalid input is refused (4xx).
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]


@pytest.fixture
def seeded(tmp_path, redis_url, monkeypatch):
    """The app over a seeded SQLite file: ``(app, admin headers, {path parameter: value})``."""
    # Generated subscription URLs name random hosts: resolve none of them (the outside world).
    monkeypatch.setattr(net, "_resolve", _no_dns)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "schemathesis",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'casehook.sqlite3'}",
            "REDIS_URL": redis_url,
            "RQ_QUEUE": f"test-{uuid.uuid4().hex[:12]}",
            "PUBLIC_URL": "http://casehook.test",
            "WTF_CSRF_ENABLED": False,
            "INBOX_WAKE_DELAY_MS": 0,
            "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
            "OUTBOUND_ALLOW": "127.0.0.1",
        }
    )
    with app.app_context():
        upgrade()
        admin = User(email="admin@example.com", role="admin", active=True, password_hash="x")
        db.session.add(admin)
        db.session.commit()
        token = create_token(admin, "schemathesis")[1]
    headers = {"Authorization": f"Bearer {token}"}
    ids = _seed(app, headers)
    yield app, headers, ids
    with app.app_context():
        get_queue().empty()
        db.session.remove()
        db.engine.dispose()


def _no_dns(host: str, port: int) -> list[str]:
    if host == "localhost":
        return ["127.0.0.1"]
    raise OSError(f"{host}: no DNS in this test")


def _seed(app, headers: dict) -> dict[str, Any]:
    """Rows for every resource, made through the API where it can; returns their ids."""
    from rq import SimpleWorker

    client = app.test_client()

    def call(method: str, path: str, status: int, **kwargs) -> dict:
        answer = getattr(client, method)(path, headers=headers, **kwargs)
        assert answer.status_code == status, (path, answer.get_data(as_text=True))
        return answer.get_json(silent=True) or {}

    github = GitHubSender(app, client)
    assert github.send_fixture("issues.opened").status_code == 202
    with app.app_context():
        queue = get_queue()
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        parked = add_case("Parked: waiting on the DBA", "open", clock.now()).id
        resolved = add_case("Resolved: the typo", "open", clock.now()).id
        db.session.commit()
    case_id = 1
    children = call("post", f"/api/cases/{case_id}/branches/fork", 201,
                    json={"reason": "two suspects",
                          "options": [{"label": "DNS"}, {"label": "TLS"}]})["children"]  # fmt: skip
    branch_id = children[0]["id"]
    call("post", f"/api/cases/{case_id}/branches/{branch_id}/switch", 200)
    note = call("post", f"/api/cases/{case_id}/branches/{branch_id}/notes", 201,
                data={"text": "dig shows it", "files": [(io.BytesIO(b"log"), "dig.txt")]},
                content_type="multipart/form-data")["note"]  # fmt: skip
    handoff = call("post", f"/api/cases/{parked}/handoffs", 201,
                   json={"intent": "park", "notes": "waiting on the DBA"})  # fmt: skip
    call("post", f"/api/cases/{resolved}/resolve", 202, json={"summary": "fixed the typo"})
    with app.app_context():
        run_due()
    outputs = call("get", f"/api/cases/{resolved}/outputs", 200)["outputs"]
    call("post", "/api/agents", 201, json={"name": "echo", "argv": ["/bin/echo", "hi"]})
    run = call("post", f"/api/cases/{case_id}/agent-runs", 202,
               json={"agent": "echo", "prompt": "hi", "requires_approval": True})  # fmt: skip
    receiver = {"url": "http://127.0.0.1:9/hook", "event_types": ["case.*"]}
    subscription = call("post", "/api/subscriptions", 201, json=receiver)
    delivery = call("get", "/api/deliveries", 200)["deliveries"][0]
    command = call("get", f"/api/endpoints/{github.endpoint_id}/commands", 200)["commands"][0]
    return {
        "case_id": case_id,
        "branch_id": branch_id,
        "attachment_id": note["attachments"][0]["id"],
        "handoff_id": handoff["id"],
        "output_id": outputs[0]["id"],
        "run_id": run["id"],
        "name": "echo",
        "subscription_id": subscription["id"],
        "endpoint_id": github.endpoint_id,
        "delivery_pk": delivery["id"],
        "command": command["name"],  # {name} under /commands/
    }


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 63, "the description lost operations"
    only = os.environ.get("SCHEMATHESIS_ONLY")
    return [o for o in operations if not only or only in o.label]


def test_every_operation_answers_its_schema_and_never_5xx(seeded):
    app, headers, ids = seeded
    operations = _operations(app)
    seen: Counter[int] = Counter()
    for operation in operations:
        # Valid input with the seeded ids (generated ones rarely name a row, so this is what
        # reaches the 200s), then invalid input everywhere, the path included.
        params = {p.name: _seeded(operation.path, p.name, ids) for p in operation.path_parameters}
        _explore(operation, GenerationMode.POSITIVE, headers, params, seen)
        _explore(operation, GenerationMode.NEGATIVE, headers, {}, seen)
    print(f"{len(operations)} operations; answers by status: {dict(sorted(seen.items()))}")
    assert seen[200] + seen[201] + seen[202] > len(operations), "hardly any call succeeded"


def _seeded(path: str, name: str, ids: dict[str, Any]) -> Any:
    """The seeded value of path parameter ``name``: ``{name}`` is a command's under
    ``/commands/`` and an agent's elsewhere."""
    return ids["command"] if name == "name" and "/commands/" in path else ids[name]


def _explore(operation, mode, headers: dict, path_parameters: dict, seen: Counter) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        seen[case.call_and_validate(headers=headers, checks=CHECKS).status_code] += 1

    run()
