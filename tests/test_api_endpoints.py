"""The JSON API for endpoints, commands, the dry run and deliveries, with bearer tokens:
each role's allowed and refused calls, secrets only in create/rotate, built-ins undeletable,
config endpoints read-only, the deliveries log and replay."""

from __future__ import annotations

import textwrap

import pytest

from app.cases.models import Case
from app.extensions import db
from app.tasks.queue import get_queue
from app.webhooks.config_sync import sync
from app.webhooks.models import CommandRecord, Delivery, Endpoint
from tests.conftest import BOTH_DATABASES, GitHubSender


@pytest.fixture
def as_role(app, anonymous_client, api_token):
    """``as_role(role)`` → a function ``call(method, path, json=None)`` with a bearer token."""

    def make(role: str):
        headers = {"Authorization": f"Bearer {api_token(role)}"}

        def call(method: str, path: str, json=None):
            return anonymous_client.open(path, method=method, json=json, headers=headers)

        return call

    return make


@pytest.fixture
def admin(as_role):
    return as_role("admin")


@pytest.fixture
def viewer(as_role):
    return as_role("viewer")


@pytest.fixture
def engineer(as_role):
    return as_role("engineer")


def error_of(response, status: int, error: str, *phrases: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.json) - {"field"} == {"error", "detail"}
    assert response.json["error"] == error
    for phrase in phrases:
        assert phrase in response.json["detail"]


def changes_of(base: str, patch: dict) -> list[tuple[str, str, dict | None]]:
    """``(method, path, body)`` of every admin change to the endpoint at ``base`` (``patch``
    the body of its PATCH): the calls refused to other roles and to config endpoints."""
    return [
        ("PATCH", base, patch),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", None),
        ("POST", f"{base}/commands", COMMAND),
        ("PATCH", f"{base}/commands/github.open", {"enabled": False}),
        ("DELETE", f"{base}/commands/github.open", None),
    ]


def sender_for(app, client, endpoint: dict) -> GitHubSender:
    """A GitHubSender posting to an endpoint made through the API."""
    sender = GitHubSender.__new__(GitHubSender)
    sender.app, sender.client, sender.secret = app, client, endpoint["secret"]
    sender.endpoint_id, sender.path = endpoint["id"], endpoint["path"]
    return sender


COMMAND = {
    "name": "spelling-bugs",
    "trigger": ["issues.opened"],
    "conditions": [{"path": "issue.title", "op": "contains", "value": "Spelling"}],
    "action": "open_case",
    "priority": 5,
    "title_template": "Bug: {{ issue.title }}",
}


# --- endpoints ---------------------------------------------------------------------------------


def test_needs_a_token(anonymous_client):
    for method, path in (
        ("GET", "/api/endpoints"),
        ("POST", "/api/endpoints"),
        ("GET", "/api/deliveries"),
    ):
        error_of(anonymous_client.open(path, method=method), 401, "unauthorized", "Bearer")


def test_admin_creates_and_the_secret_is_only_in_that_answer(
    app, admin, viewer, anonymous_client, drain
):
    created = admin("POST", "/api/endpoints", {"provider": "github", "name": "acme/api"})
    assert created.status_code == 201
    body = created.json
    assert body["url"] == f"http://casehook.test/webhooks/github/{body['id']}"
    assert body["source"] == "console" and body["read_only"] is False
    secret = body["secret"]
    assert len(secret) >= 32
    sender = sender_for(app, anonymous_client, body)
    assert sender.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    for call in (admin, viewer):
        for path in ("/api/endpoints", f"/api/endpoints/{body['id']}"):
            response = call("GET", path)
            assert response.status_code == 200
            assert secret not in response.get_data(as_text=True)
    one = viewer("GET", f"/api/endpoints/{body['id']}").json
    assert one["secret"] == {"stored": "encrypted", "env": None, "masked": "••••••••••••"}
    assert one["delivery_count"] == 1 and one["last_delivery_at"]


def test_create_validates(admin):
    error_of(
        admin("POST", "/api/endpoints", {"provider": "fax", "name": "x"}),
        400,
        "invalid_endpoint",
        "provider must be one of",
    )
    error_of(
        admin("POST", "/api/endpoints", {"provider": "github"}),
        400,
        "invalid_endpoint",
        "give the endpoint a name",
    )
    error_of(
        admin(
            "POST",
            "/api/endpoints",
            {"provider": "alertmanager", "name": "x", "settings": {"group_by": "team"}},
        ),
        400,
        "invalid_settings",
        "group_by must be one of fingerprint, groupKey",
    )
    error_of(
        admin("POST", "/api/endpoints", {"provider": "github", "name": "x", "id": "y"}),
        400,
        "invalid_input",
        "id: is not a field of this request",
    )
    error_of(admin("POST", "/api/endpoints", [1]), 400, "invalid_json")
    standard = admin("POST", "/api/endpoints", {"provider": "standard", "name": "billing"})
    assert standard.json["secret"].startswith("whsec_")
    given = admin("POST", "/api/endpoints", {"provider": "slack", "name": "ws", "secret": "abc"})
    assert given.json["secret"] == "abc"


def test_viewer_and_engineer_cannot_change_endpoints(app, viewer, engineer, admin):
    endpoint = admin("POST", "/api/endpoints", {"provider": "github", "name": "x"}).json
    base = f"/api/endpoints/{endpoint['id']}"
    for call, role in ((viewer, "viewer"), (engineer, "engineer")):
        for method, path, body in (
            ("POST", "/api/endpoints", {"provider": "github", "name": "y"}),
            *changes_of(base, {"name": "z"}),
        ):
            error_of(
                call(method, path, body),
                403,
                "forbidden",
                "this needs the admin role; you are signed in as",
                f"the {role} role",
            )
        assert call("GET", base).status_code == 200
        assert call("GET", f"{base}/commands").status_code == 200
    with app.app_context():
        assert db.session.get(Endpoint, endpoint["id"]).name == "x"


def test_patch_name_enabled_settings(app, admin):
    endpoint = admin("POST", "/api/endpoints", {"provider": "alertmanager", "name": "prom"}).json
    base = f"/api/endpoints/{endpoint['id']}"
    changed = admin(
        "PATCH", base, {"name": "prom prod", "enabled": False, "settings": {"group_by": "groupKey"}}
    )
    assert changed.status_code == 200
    assert (changed.json["name"], changed.json["enabled"], changed.json["settings"]) == (
        "prom prod",
        False,
        {"group_by": "groupKey"},
    )
    assert "secret" not in changed.json or not isinstance(changed.json["secret"], str)
    error_of(admin("PATCH", base, {"secret": "x"}), 400, "invalid_input", "rotate-secret")
    error_of(
        admin("PATCH", base, {"provider": "github"}), 400, "invalid_input", "provider cannot change"
    )
    error_of(
        admin("PATCH", base, {"enabled": "yes"}),
        400,
        "invalid_input",
        "enabled: Input should be a valid boolean",
    )
    error_of(admin("PATCH", base, {"settings": "[]"}), 400, "invalid_input", "settings: ")
    error_of(admin("GET", "/api/endpoints/nope"), 404, "not_found", "there is no endpoint nope")


def test_rotate_secret(app, admin, anonymous_client):
    endpoint = admin("POST", "/api/endpoints", {"provider": "github", "name": "x"}).json
    sender = sender_for(app, anonymous_client, endpoint)
    rotated = admin("POST", f"/api/endpoints/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json["secret"] != endpoint["secret"]
    assert sender.send_fixture("issues.opened").status_code == 401
    sender.secret = rotated.json["secret"]
    assert sender.send_fixture("issues.opened").status_code == 202
    given = admin("POST", f"/api/endpoints/{endpoint['id']}/rotate-secret", {"secret": "mine"})
    assert given.json["secret"] == "mine"


@BOTH_DATABASES
def test_delete_drops_deliveries_and_commands(app, admin, anonymous_client, drain):
    endpoint = admin("POST", "/api/endpoints", {"provider": "github", "name": "x"}).json
    sender = sender_for(app, anonymous_client, endpoint)
    sender.send_fixture("issues.opened")
    sender.send_fixture("issues.edited")
    assert drain() == 0
    assert admin("POST", f"/api/endpoints/{endpoint['id']}/commands", COMMAND).status_code == 201
    deleted = admin("DELETE", f"/api/endpoints/{endpoint['id']}")
    assert deleted.json == {"deleted": endpoint["id"], "deliveries_deleted": 2}
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 0
        assert db.session.scalar(db.select(db.func.count(CommandRecord.id))) == 0
        assert db.session.scalar(db.select(Case.endpoint_id)) is None  # the case stays
    error_of(admin("GET", f"/api/endpoints/{endpoint['id']}"), 404, "not_found")


# --- commands ----------------------------------------------------------------------------------


@pytest.fixture
def endpoint(admin):
    return admin("POST", "/api/endpoints", {"provider": "github", "name": "acme/api"}).json


def test_commands_list_builtins_and_dynamic(admin, viewer, endpoint):
    base = f"/api/endpoints/{endpoint['id']}/commands"
    listed = viewer("GET", base).json["commands"]
    kinds = {c["name"]: (c["kind"], c["deletable"]) for c in listed}
    assert kinds["github.open"] == ("builtin", False)
    created = admin("POST", base, COMMAND)
    assert created.status_code == 201
    assert created.json["kind"] == "dynamic" and created.json["source"] == "api"
    assert created.json["conditions"] == COMMAND["conditions"]
    names = [c["name"] for c in viewer("GET", base).json["commands"]]
    assert names[0] == "spelling-bugs"  # priority 5 runs first
    assert viewer("GET", f"{base}/spelling-bugs").json["title_template"] == "Bug: {{ issue.title }}"
    error_of(viewer("GET", f"{base}/nope"), 404, "not_found", "no command 'nope'")


def test_command_validation(admin, endpoint):
    base = f"/api/endpoints/{endpoint['id']}/commands"
    error_of(
        admin("POST", base, {**COMMAND, "title_template": "a\nb\n{% if %}"}),
        400,
        "invalid_command",
        "title_template: line 3: ",
    )
    error_of(
        admin("POST", base, {**COMMAND, "action": "forward"}),
        400,
        "invalid_command",
        "subscription: forward needs the id of a subscription",
    )
    error_of(
        admin("POST", base, {**COMMAND, "conditions": [{"path": "a", "op": "like"}]}),
        400,
        "invalid_command",
        "conditions[1]: op must be one of",
    )
    assert admin("POST", base, COMMAND).status_code == 201
    error_of(admin("POST", base, COMMAND), 409, "command_exists", "already a command")


def test_builtins_are_overridden_or_disabled_never_deleted(app, admin, endpoint):
    base = f"/api/endpoints/{endpoint['id']}/commands"
    error_of(
        admin("DELETE", f"{base}/github.open"),
        409,
        "builtin_command",
        "cannot be deleted, only overridden or disabled",
    )
    builtin = admin("GET", f"{base}/github.open").json
    off = admin("PATCH", f"{base}/github.open", {"enabled": False})
    assert off.status_code == 200
    assert (off.json["kind"], off.json["enabled"]) == ("override", False)
    assert off.json["trigger"] == builtin["trigger"]  # a copy of the built-in, switched off
    error_of(admin("PATCH", f"{base}/github.open", {"name": "renamed"}), 400, "invalid_command")
    removed = admin("DELETE", f"{base}/github.open")
    assert removed.json == {"deleted": "github.open", "builtin_restored": True}
    back = admin("GET", f"{base}/github.open").json
    assert (back["kind"], back["enabled"]) == ("builtin", True)
    admin("POST", base, COMMAND)
    renamed = admin("PATCH", f"{base}/spelling-bugs", {"name": "typos", "priority": 7})
    assert (renamed.json["name"], renamed.json["priority"]) == ("typos", 7)
    assert admin("DELETE", f"{base}/typos").json == {"deleted": "typos", "builtin_restored": False}
    error_of(admin("DELETE", f"{base}/typos"), 404, "not_found")


# --- dry run -----------------------------------------------------------------------------------


def _state(app):
    with app.app_context():
        return (
            db.session.scalar(db.select(db.func.count(Delivery.id))),
            db.session.scalar(db.select(db.func.count(Case.id))),
            db.session.scalar(db.select(db.func.count(CommandRecord.id))),
            get_queue().count,
        )


def test_dry_run_on_a_payload_and_on_a_delivery_changes_nothing(
    app, admin, viewer, endpoint, anonymous_client, drain
):
    base = f"/api/endpoints/{endpoint['id']}"
    admin("POST", f"{base}/commands", COMMAND)
    sender = sender_for(app, anonymous_client, endpoint)
    sender.send_fixture("issues.opened", delivery_id="gh-1")
    assert drain() == 0
    before = _state(app)
    from tests.conftest import fixture_payload

    payload = fixture_payload("issues.opened")
    result = viewer("POST", f"{base}/dry-run", {"event_type": "issues.opened", "payload": payload})
    assert result.status_code == 200
    rows = {r["name"]: r for r in result.json["subjects"][0]["commands"]}
    assert rows["spelling-bugs"]["runs"] and rows["spelling-bugs"]["title"] == (
        "Bug: Spelling error in the README file"
    )
    assert rows["github.open"]["matched"] and not rows["github.open"]["runs"]
    assert rows["github.close"]["reason"].startswith("trigger issues.closed")
    by_delivery = viewer("POST", f"{base}/dry-run", {"delivery_id": "gh-1"}).json
    assert by_delivery["event_type"] == "issues.opened"
    assert by_delivery["source"] == "delivery gh-1"
    assert by_delivery["subjects"] == result.json["subjects"]
    by_fixture = viewer("POST", f"{base}/dry-run", {"fixture": "issues.opened"}).json
    assert by_fixture["subjects"] == result.json["subjects"]
    error_of(viewer("POST", f"{base}/dry-run", {}), 400, "invalid_dry_run", "delivery_id")
    error_of(
        viewer("POST", f"{base}/dry-run", {"event_type": "x", "payload": [1]}),
        400,
        "invalid_input",
        "payload: Input should be a valid dictionary",
    )
    error_of(viewer("POST", f"{base}/dry-run", {"delivery_id": "nope"}), 404, "not_found")
    assert _state(app) == before


def test_alertmanager_dry_run_has_one_subject_per_alert(admin, viewer):
    endpoint = admin("POST", "/api/endpoints", {"provider": "alertmanager", "name": "p"}).json
    result = viewer("POST", f"/api/endpoints/{endpoint['id']}/dry-run", {"fixture": "firing"})
    subjects = result.json["subjects"]
    assert len(subjects) >= 1 and all(s["event_type"] == "alert.firing" for s in subjects)


# --- deliveries --------------------------------------------------------------------------------


@pytest.fixture
def log(app, admin, anonymous_client, drain):
    """Two endpoints; the first has one processed, one unauthorized and one rejected delivery."""
    first = admin("POST", "/api/endpoints", {"provider": "github", "name": "a"}).json
    second = admin("POST", "/api/endpoints", {"provider": "github", "name": "b"}).json
    sender = sender_for(app, anonymous_client, first)
    sender.send_fixture("issues.opened", delivery_id="ok-1")
    sender.send("issues", b"{}", **{"X-Hub-Signature-256": "sha256=0"})
    sender.send("issues", b"not json")
    sender_for(app, anonymous_client, second).send_fixture("push")
    assert drain() == 0
    return first, second


@BOTH_DATABASES
def test_deliveries_filter_and_page(app, viewer, log, monkeypatch):
    first, _ = log
    everything = viewer("GET", "/api/deliveries").json
    assert everything["total"] == 4 and everything["page"] == 1
    mine = viewer("GET", f"/api/deliveries?endpoint_id={first['id']}").json
    assert mine["total"] == 3
    verdicts = viewer("GET", f"/api/deliveries?endpoint_id={first['id']}&verdict=unauthorized")
    assert [d["verdict"] for d in verdicts.json["deliveries"]] == ["unauthorized"]
    assert verdicts.json["deliveries"][0]["replayable"] is False
    assert "bad_signature" in verdicts.json["deliveries"][0]["verdict_detail"]
    processed = viewer("GET", "/api/deliveries?status=processed").json["deliveries"]
    assert {d["delivery_id"] for d in processed} >= {"ok-1"}
    assert all(d["processing_ms"] is not None for d in processed)
    error_of(
        viewer("GET", "/api/deliveries?verdict=maybe"),
        400,
        "invalid_input",
        "verdict: Input should be 'accepted', 'rejected' or 'unauthorized'",
    )
    error_of(viewer("GET", "/api/deliveries?page=0"), 400, "invalid_input", "page must be")
    # limit + after, as every paged list (next_after null at the end).
    first_two = viewer("GET", "/api/deliveries?limit=2").json
    rest = viewer("GET", f"/api/deliveries?limit=2&after={first_two['next_after']}").json
    assert len(first_two["deliveries"]) == len(rest["deliveries"]) == 2
    assert rest["next_after"] is None
    ids = [d["id"] for d in first_two["deliveries"] + rest["deliveries"]]
    assert ids == [d["id"] for d in everything["deliveries"]]
    from app.api import deliveries

    monkeypatch.setattr(deliveries, "DELIVERIES_PER_PAGE", 3)
    page2 = viewer("GET", "/api/deliveries?page=2").json
    assert (page2["total"], page2["per_page"], len(page2["deliveries"])) == (4, 3, 1)


def test_one_delivery_with_headers_and_body(app, viewer, log):
    listed = viewer("GET", "/api/deliveries?verdict=accepted&status=processed").json
    ok = next(d for d in listed["deliveries"] if d["delivery_id"] == "ok-1")
    one = viewer("GET", f"/api/deliveries/{ok['id']}").json
    assert one["headers"]["X-Github-Event"] == "issues" or one["headers"].get("X-GitHub-Event")
    assert '"action": "opened"' in one["body"] and one["body_bytes"] == len(one["body"].encode())
    assert one["case_id"] == 1
    error_of(viewer("GET", "/api/deliveries/nope"), 404, "not_found", "there is no delivery nope")


def test_replay(app, viewer, engineer, log, drain):
    listed = viewer("GET", "/api/deliveries").json["deliveries"]
    ok = next(d for d in listed if d["delivery_id"] == "ok-1")
    refused = next(d for d in listed if d["verdict"] == "unauthorized")
    error_of(
        viewer("POST", f"/api/deliveries/{ok['id']}/replay"),
        403,
        "forbidden",
        "this needs the engineer role (or above)",
    )
    replayed = engineer("POST", f"/api/deliveries/{ok['id']}/replay")
    assert replayed.status_code == 202
    assert replayed.json["replay_of"] == ok["id"] and replayed.json["requeued"] is False
    assert replayed.json["delivery"]["delivery_id"] == "ok-1#replay-1"
    assert drain() == 0
    again = viewer("GET", f"/api/deliveries/{replayed.json['delivery']['id']}").json
    assert again["status"] == "processed" and again["case_id"] == 1
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Case.id))) == 1
    error_of(
        engineer("POST", f"/api/deliveries/{refused['id']}/replay"),
        409,
        "not_replayable",
        "never authentic",
        "bad_signature",
    )


# --- config endpoints --------------------------------------------------------------------------


def test_config_endpoints_are_read_only(app, admin, tmp_path, monkeypatch):
    monkeypatch.setenv("CASEHOOK_TEST_API_SECRET", "s")
    (tmp_path / "team.yaml").write_text(
        textwrap.dedent("""\
        endpoints:
          - id: gh-team
            provider: github
            name: team
            secret_env: CASEHOOK_TEST_API_SECRET
        """)
    )
    with app.app_context():
        sync(tmp_path)
    one = admin("GET", "/api/endpoints/gh-team").json
    assert (one["source"], one["config_file"], one["read_only"]) == ("config", "team.yaml", True)
    assert one["secret"] == {
        "stored": "env",
        "env": "CASEHOOK_TEST_API_SECRET",
        "masked": "from $CASEHOOK_TEST_API_SECRET",
    }
    base = "/api/endpoints/gh-team"
    for method, path, body in changes_of(base, {"name": "x"}):
        error_of(
            admin(method, path, body),
            409,
            "config_managed",
            "managed by the config file team.yaml",
            "flask config sync",
        )
    assert admin("POST", f"{base}/dry-run", {"fixture": "ping"}).status_code == 200
