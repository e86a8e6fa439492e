"""The console for endpoints, commands, the dry run, test deliveries and the deliveries log:
what each role may do, inline validation, secrets shown once, config endpoints read-only."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from app.cases.models import Case
from app.extensions import db
from app.tasks.queue import get_queue
from app.webhooks.config_sync import sync
from app.webhooks.models import CommandRecord, Delivery, Endpoint
from app.webhooks.providers import PROVIDERS
from app.webhooks.views_support import sample_names
from tests.conftest import BOTH_DATABASES

HX = {"HX-Request": "true"}


def text(response) -> str:
    return response.get_data(as_text=True)


def counts(app) -> tuple:
    """What a dry run must leave alone: endpoints, deliveries, cases, commands, queued jobs."""
    with app.app_context():
        return (
            db.session.scalar(db.select(db.func.count(Endpoint.id))),
            db.session.scalar(db.select(db.func.count(Delivery.id))),
            db.session.scalar(db.select(db.func.count(Case.id))),
            db.session.scalar(db.select(db.func.count(CommandRecord.id))),
            get_queue().count,
        )


def new_endpoint(client, provider="github", name="acme/api", **extra):
    """Create an endpoint through the console; returns (endpoint id, secret, response)."""
    response = client.post("/endpoints", data={"provider": provider, "name": name, **extra})
    assert response.status_code == 201, text(response)
    page = text(response)
    secret = re.search(r'id="new-secret">([^<]+)<', page).group(1)
    endpoint_id = re.search(r"/webhooks/" + provider + r"/([A-Za-z0-9_-]+)<", page).group(1)
    return endpoint_id, secret, response


COMMAND = {
    "name": "spelling-bugs",
    "trigger": "issues.opened",
    "action": "open_case",
    "priority": "5",
    "conditions-1-path": "issue.title",
    "conditions-1-op": "contains",
    "conditions-1-value": "Spelling",
    "title_template": "Bug: {{ issue.title }} (#{{ issue.number }})",
    "stop_after_match": ["0", "1"],
    "enabled": ["0", "1"],
}


# --- the endpoints list and creating one --------------------------------------------------------


def test_list_shows_provider_url_state_source_count_and_last_delivery(client, github):
    assert github.send_fixture("issues.opened").status_code == 202
    page = text(client.get("/endpoints"))
    row = re.search(rf'<tr data-endpoint-id="{github.endpoint_id}">(.*?)</tr>', page, re.S).group(1)
    assert "github" in row and "enabled" in row and "console" in row
    assert f"http://casehook.test/webhooks/github/{github.endpoint_id}" in row
    assert ">1</a>" in row  # one delivery, linked to the log
    assert "just now" in row  # the last delivery
    assert "Add an endpoint" in page


def test_admin_creates_an_endpoint_and_sees_the_secret_once(app, client, drain):
    endpoint_id, secret, response = new_endpoint(client, name="acme/api")
    page = text(response)
    assert "shown <strong>only this once</strong>" in page
    assert f"http://casehook.test/webhooks/github/{endpoint_id}" in page
    # The secret is the one the route checks: a delivery signed with it is accepted.
    from tests.conftest import GitHubSender

    sender = GitHubSender.__new__(GitHubSender)
    sender.app, sender.client, sender.secret = app, client, secret
    sender.endpoint_id, sender.path = endpoint_id, f"/webhooks/github/{endpoint_id}"
    assert sender.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    # Afterwards it is only masked, everywhere.
    for path in ("/endpoints", f"/endpoints/{endpoint_id}", "/api/endpoints"):
        shown = text(client.get(path))
        assert secret not in shown, path
    assert "••••" in text(client.get(f"/endpoints/{endpoint_id}"))


def test_create_validates_inline(client):
    response = client.post("/endpoints", data={"provider": "github", "name": "  "}, headers=HX)
    assert response.status_code == 422
    page = text(response)
    assert page.lstrip().startswith("{#") or page.lstrip().startswith('<div id="endpoints"')
    assert "give the endpoint a name" in page and "has-error" in page
    bad = client.post("/endpoints", data={"provider": "fax", "name": "x"}, headers=HX)
    assert bad.status_code == 422 and "provider must be one of" in text(bad)
    whsec = client.post(
        "/endpoints", data={"provider": "standard", "name": "billing", "secret": "hunter2"}
    )
    assert whsec.status_code == 422
    assert "whsec_ followed by base64" in text(whsec)


def test_standard_endpoints_get_a_whsec_secret(client):
    _, secret, _ = new_endpoint(client, provider="standard", name="billing")
    assert secret.startswith("whsec_")


def test_viewer_and_engineer_read_but_cannot_change(app, viewer_client, engineer_client, github):
    for role_client, role in ((viewer_client, "viewer"), (engineer_client, "engineer")):
        assert role_client.get("/endpoints").status_code == 200
        page = text(role_client.get(f"/endpoints/{github.endpoint_id}"))
        assert "Add an endpoint" not in page and "Rotate secret" not in page
        assert "Delete endpoint" not in page and "New command" not in page
        assert "Admins can edit this endpoint" in page
        base = f"/endpoints/{github.endpoint_id}"
        for path, data in (
            ("/endpoints", {"provider": "github", "name": "x"}),
            (base, {"name": "renamed"}),
            (f"{base}/rotate-secret", {}),
            (f"{base}/delete", {}),
            (f"{base}/commands", COMMAND),
            (f"{base}/commands/github.open/enabled", {"enabled": "0"}),
            (f"{base}/test-delivery", {"fixture": "issues.opened"}),
        ):
            refused = role_client.post(path, data=data)
            assert refused.status_code == 403, (role, path)
            assert f"this needs the admin role; you are signed in as {role}@example.com" in text(
                refused
            )
    with app.app_context():
        endpoint = db.session.get(Endpoint, github.endpoint_id)
        assert endpoint.name == "Codertocat/Hello-World" and endpoint.enabled
        assert db.session.scalar(db.select(db.func.count(CommandRecord.id))) == 0


# --- editing, rotating, deleting ----------------------------------------------------------------


def test_edit_name_enabled_and_alertmanager_group_by(app, client):
    endpoint_id, _, _ = new_endpoint(client, provider="alertmanager", name="prom")
    page = text(client.get(f"/endpoints/{endpoint_id}"))
    assert 'name="group_by"' in page and "one case per Alertmanager group" in page
    response = client.post(
        f"/endpoints/{endpoint_id}",
        data={"name": "prom prod", "enabled": ["0"], "group_by": "groupKey", "settings": ""},
        headers=HX,
    )
    assert response.status_code == 200 and "Saved." in text(response)
    with app.app_context():
        endpoint = db.session.get(Endpoint, endpoint_id)
        assert (endpoint.name, endpoint.enabled, endpoint.settings) == (
            "prom prod",
            False,
            {"group_by": "groupKey"},
        )
    back = client.post(
        f"/endpoints/{endpoint_id}",
        data={"name": "prom prod", "enabled": ["0", "1"], "group_by": "fingerprint"},
    )
    assert back.status_code == 302
    with app.app_context():
        endpoint = db.session.get(Endpoint, endpoint_id)
        assert endpoint.enabled and endpoint.settings == {}


def test_edit_refuses_bad_settings_inline(app, github, client):
    path = f"/endpoints/{github.endpoint_id}"
    response = client.post(path, data={"name": "x", "settings": '{"a": '}, headers=HX)
    assert response.status_code == 422
    assert "settings are not valid JSON (line 1" in text(response)
    assert text(response).lstrip().startswith('<section class="card" id="endpoint-settings"')
    listed = client.post(path, data={"name": "x", "settings": "[1]"}, headers=HX)
    assert listed.status_code == 422 and "settings must be a JSON object" in text(listed)
    blank = client.post(path, data={"name": ""}, headers=HX)
    assert blank.status_code == 422 and "give the endpoint a name" in text(blank)
    with app.app_context():
        assert db.session.get(Endpoint, github.endpoint_id).name == "Codertocat/Hello-World"


def test_rotate_shows_the_new_secret_once_and_the_old_one_stops_working(app, client, github):
    old = github.secret
    response = client.post(f"/endpoints/{github.endpoint_id}/rotate-secret", headers=HX)
    assert response.status_code == 200
    new = re.search(r'id="new-secret">([^<]+)<', text(response)).group(1)
    assert new != old and "only this once" in text(response)
    assert github.send_fixture("issues.opened").status_code == 401
    github.secret = new
    assert github.send_fixture("issues.opened").status_code == 202
    assert new not in text(client.get(f"/endpoints/{github.endpoint_id}"))
    # A secret the provider makes (Slack's, say) can be given instead.
    given = client.post(
        f"/endpoints/{github.endpoint_id}/rotate-secret", data={"secret": "from-the-provider"}
    )
    assert "from-the-provider" in text(given)


@BOTH_DATABASES
def test_delete_explains_and_drops_deliveries_but_keeps_cases(app, client, github, drain):
    github.send_fixture("issues.opened")
    github.send_fixture("issue_comment.created")
    assert drain() == 0
    page = text(client.get(f"/endpoints/{github.endpoint_id}"))
    assert "drops its <strong>2 stored deliveries</strong>" in page
    assert 'hx-confirm="Delete the endpoint Codertocat/Hello-World and its 2 deliveries?' in page
    response = client.post(f"/endpoints/{github.endpoint_id}/delete", headers=HX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/endpoints"
    assert "Deleted endpoint Codertocat/Hello-World and its 2 deliveries" in text(
        client.get("/endpoints")
    )
    with app.app_context():
        assert db.session.get(Endpoint, github.endpoint_id) is None
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == 0
        case = db.session.scalars(db.select(Case)).one()
        assert case.endpoint_id is None
    assert github.send_fixture("issues.opened").status_code == 404


# --- commands -----------------------------------------------------------------------------------


def test_commands_panel_shows_builtins_beside_dynamic_ones(app, client, github):
    base = f"/endpoints/{github.endpoint_id}"
    assert client.post(f"{base}/commands", data=COMMAND, headers=HX).status_code == 200
    override = {
        **COMMAND,
        "name": "github.activity",
        "trigger": "issues.*",
        "replacing": "github.activity",
        "kind": "builtin",
        "action": "update_case",
        "priority": "50",
    }
    assert client.post(f"{base}/commands", data=override, headers=HX).status_code == 200
    panel = text(client.get(f"{base}/commands", headers=HX))
    rows = dict(re.findall(r'<tr data-command="([^"]+)"[^>]*>(.*?)</tr>', panel, re.S))
    assert "built-in" in rows["github.open"] and "Delete" not in rows["github.open"]
    assert "Override" in rows["github.open"]
    assert "dynamic" in rows["spelling-bugs"] and ">Delete<" in rows["spelling-bugs"]
    assert "overrides built-in" in rows["github.activity"]
    assert "Remove override" in rows["github.activity"]
    assert "issue.title contains &#39;Spelling&#39;" in rows["spelling-bugs"]
    # The run order: priority 5 first.
    assert next(iter(rows)) == "spelling-bugs"


def test_command_form_validates_inline_with_the_template_line(app, client, github):
    base = f"/endpoints/{github.endpoint_id}"
    form = text(client.get(f"{base}/commands/new", headers=HX))
    assert form.lstrip().startswith("{#") or '<form method="post"' in form
    bad = {**COMMAND, "title_template": "ok\n{{ issue.title }"}
    response = client.post(f"{base}/commands", data=bad, headers=HX)
    assert response.status_code == 422
    page = text(response)
    assert '<form method="post"' in page and "<html" not in page
    error = re.search(r'name="title_template".*?field-error" role="alert">([^<]+)<', page, re.S)
    assert error and error.group(1).startswith("line 2: ")
    # What was typed is kept.
    assert "ok\n{{ issue.title }</textarea>" in page
    later = client.post(f"{base}/commands", data={**COMMAND, "action": "forward"}, headers=HX)
    assert later.status_code == 422 and "forward needs the id of a subscription" in text(later)
    agentless = client.post(f"{base}/commands", data={**COMMAND, "action": "run_agent"}, headers=HX)
    assert agentless.status_code == 422 and "name the agent to run" in text(agentless)
    regex = {**COMMAND, "conditions-1-op": "matches", "conditions-1-value": "(unclosed"}
    response = client.post(f"{base}/commands", data=regex, headers=HX)
    assert response.status_code == 422
    assert "conditions[1]: not a valid regular expression" in text(response)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(CommandRecord.id))) == 0


def test_saved_command_drives_processing_and_round_trips_through_the_form(
    app, client, github, drain
):
    base = f"/endpoints/{github.endpoint_id}"
    saved = client.post(
        f"{base}/commands",
        data={
            **COMMAND,
            "conditions-2-path": "issue.number",
            "conditions-2-op": "eq",
            "conditions-2-value": "1",
        },
        headers=HX,
    )
    assert saved.status_code == 200
    assert saved.headers["HX-Retarget"] == "#commands"
    assert "Saved command spelling-bugs." in text(saved)
    edit = text(client.get(f"{base}/commands/spelling-bugs/edit", headers=HX))
    assert 'value="Spelling"' in edit and 'name="conditions-2-value" value="1"' in edit
    github.send_fixture("issues.opened")
    assert drain() == 0
    with app.app_context():
        assert db.session.scalars(db.select(Case.title)).one() == (
            "Bug: Spelling error in the README file (#1)"
        )
    # The same name again is a conflict, not a silent overwrite.
    again = client.post(f"{base}/commands", data=COMMAND, headers=HX)
    assert again.status_code == 422 and "already a command" in text(again)


def test_builtins_are_disabled_not_deleted(app, client, github, drain):
    base = f"/endpoints/{github.endpoint_id}"
    refused = client.post(f"{base}/commands/github.open/delete")
    assert refused.status_code == 409
    assert "built in: it cannot be deleted, only overridden or disabled" in text(refused)
    off = client.post(f"{base}/commands/github.open/enabled", data={"enabled": "0"}, headers=HX)
    assert off.status_code == 200 and "Disabled github.open." in text(off)
    row = re.search(r'<tr data-command="github.open"[^>]*>(.*?)</tr>', text(off), re.S).group(1)
    assert "disabled" in row and "overrides built-in" in row and "Remove override" in row
    github.send_fixture("issues.opened")
    assert drain() == 0
    with app.app_context():
        # github.activity (update_case) runs instead of the switched-off github.open.
        outcome = db.session.scalar(db.select(Delivery.outcome))
        assert outcome == "github.activity: opened a case"
    back = client.post(f"{base}/commands/github.open/delete", headers=HX)
    assert "the built-in command is back in force" in text(back)
    row = re.search(r'<tr data-command="github.open"[^>]*>(.*?)</tr>', text(back), re.S).group(1)
    assert "enabled" in row and "Delete" not in row


# --- dry run and test delivery ------------------------------------------------------------------


def test_dry_run_on_a_fixture_shows_every_command_and_changes_nothing(app, client, github):
    base = f"/endpoints/{github.endpoint_id}"
    client.post(f"{base}/commands", data=COMMAND)
    before = counts(app)
    response = client.post(f"{base}/dry-run", data={"subject": "fixture:issues.opened"}, headers=HX)
    assert response.status_code == 200
    page = text(response)
    assert "event type <code>issues.opened</code>. Nothing was changed." in page
    rows = dict(re.findall(r'<tr data-command="([^"]+)" class="(\w+)"', page))
    assert rows["spelling-bugs"] == "runs"
    assert rows["github.open"] == "matched"  # matches, but spelling-bugs stops after matching
    assert rows["github.close"] == "skipped"
    assert "Bug: Spelling error in the README file (#1)" in page
    assert "an earlier command stops after matching" in page
    assert "trigger issues.closed, pull_request.closed does not match issues.opened" in page
    assert counts(app) == before


def test_dry_run_on_a_stored_delivery_and_refusals(app, client, github, drain):
    github.send_fixture("issues.opened")
    github.send("issues", b"{}", **{"X-Hub-Signature-256": "sha256=0"})
    assert drain() == 0
    with app.app_context():
        accepted = db.session.scalars(
            db.select(Delivery).where(Delivery.verdict == "accepted")
        ).one()
        refused = db.session.scalars(
            db.select(Delivery).where(Delivery.verdict != "accepted")
        ).one()
        accepted_pk, refused_pk = accepted.id, refused.id
    page = text(client.get(f"/endpoints/{github.endpoint_id}"))
    assert f'value="delivery:{accepted_pk}"' in page and refused_pk not in page
    before = counts(app)
    base = f"/endpoints/{github.endpoint_id}/dry-run"
    response = client.post(base, data={"subject": f"delivery:{accepted_pk}"}, headers=HX)
    assert response.status_code == 200 and "runs: open_case" in text(response)
    no = client.post(base, data={"subject": f"delivery:{refused_pk}"}, headers=HX)
    assert no.status_code == 422 and "was unauthorized: it was never authentic" in text(no)
    none = client.post(base, data={"subject": "fixture:../../etc/passwd"}, headers=HX)
    assert none.status_code == 422 and "no sample" in text(none)
    assert counts(app) == before


def test_viewers_may_dry_run(viewer_client, github):
    response = viewer_client.post(
        f"/endpoints/{github.endpoint_id}/dry-run", data={"subject": "fixture:issues.closed"}
    )
    # Not a fixture that exists: refused inline, not forbidden.
    assert response.status_code == 422
    ok = viewer_client.post(
        f"/endpoints/{github.endpoint_id}/dry-run", data={"subject": "fixture:pull_request.closed"}
    )
    assert ok.status_code == 200 and "<html" in text(ok)  # no htmx: the whole page, with it
    assert "runs: close_case" in text(ok)


# Each shipped sample through "Send a test delivery": tests/test_samples.py.


def test_test_delivery_opens_the_case_and_a_resend_with_a_body_id_is_a_duplicate(
    app, client, drain
):
    endpoint_id, _, _ = new_endpoint(client, provider="alertmanager", name="prom")
    url = f"/endpoints/{endpoint_id}/test-delivery"
    first = text(client.post(url, data={"fixture": "firing"}, headers=HX))
    assert "answered 202" in first and "deliveries log" in first
    assert drain() == 0
    second = text(client.post(url, data={"fixture": "firing"}, headers=HX))
    assert "answered 200" in second and "not processed again" in second
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Case.id))) >= 1


def test_a_provider_without_samples_is_explained(app, client, github, monkeypatch):
    monkeypatch.setattr(type(PROVIDERS["github"]), "samples", lambda self: [])
    page = text(client.get(f"/endpoints/{github.endpoint_id}"))
    assert "Casehook ships no github samples" in page
    assert "Nothing to dry-run yet" in page
    response = client.post(
        f"/endpoints/{github.endpoint_id}/test-delivery",
        data={"fixture": "issues.opened"},
        headers=HX,
    )
    assert response.status_code == 422
    assert "no sample &#39;issues.opened&#39; for github" in text(response)
    with app.app_context():
        assert sample_names("github") == []


def test_rendered_payload_text_is_escaped_in_the_dry_run(app, client, github):
    base = f"/endpoints/{github.endpoint_id}"
    client.post(f"{base}/commands", data={**COMMAND, "title_template": "<b>{{ issue.title }}</b>"})
    page = text(client.post(f"{base}/dry-run", data={"subject": "fixture:issues.opened"}))
    assert "<b>Spelling" not in page and "&lt;b&gt;Spelling error" in page


# --- the deliveries log and replay ----------------------------------------------------------


@pytest.fixture
def mixed(app, github, drain):
    """One processed delivery, one unauthorized, one rejected (not JSON)."""
    github.send_fixture("issues.opened")
    github.send("issues", b"{}", **{"X-Hub-Signature-256": "sha256=0"})
    github.send("issues", b"not json")
    assert drain() == 0
    return github


@BOTH_DATABASES
def test_deliveries_log_filters_by_verdict_and_status(app, client, mixed):
    base = f"/endpoints/{mixed.endpoint_id}/deliveries"
    page = text(client.get(base))
    assert page.count('data-delivery="') == 3
    assert "verdict-unauthorized" in page and "bad_signature" in page
    assert "never authentic, so they cannot be replayed" in page
    only = client.get(f"{base}?verdict=unauthorized", headers=HX)
    assert only.headers["HX-Push-Url"] == f"{base}?verdict=unauthorized"
    body = text(only)
    assert body.lstrip().startswith('<div id="deliveries">')
    assert re.findall(r'data-verdict="(\w+)"', body) == ["unauthorized"]
    processed = text(client.get(f"{base}?status=processed"))
    assert re.findall(r'data-verdict="(\w+)"', processed) == ["accepted"]
    assert "github.open: opened a case" in processed and 'href="/cases/1"' in processed
    assert re.search(r"\d+\.\d ms", processed)
    none = text(client.get(f"{base}?verdict=rejected&status=processed"))
    assert "No deliveries match these filters" in none


def test_deliveries_log_pages(app, client, github, monkeypatch):
    from app.webhooks import views_deliveries

    monkeypatch.setattr(views_deliveries, "DELIVERIES_PER_PAGE", 2)
    for _ in range(3):
        github.send_fixture("issues.edited")
    base = f"/endpoints/{github.endpoint_id}/deliveries"
    first = text(client.get(base))
    assert "Page 1 of 2 · 3 deliveries" in first and first.count('data-delivery="') == 2
    second = text(client.get(f"{base}?page=2"))
    assert second.count('data-delivery="') == 1 and 'rel="prev"' in second


def test_deliveries_log_counts_only_so_far_ahead(app, client, github, monkeypatch):
    """The log counts at most ``COUNT_AHEAD`` deliveries past its page (a long history is
    not counted on every view): beyond that it says "more" and still offers the next page."""
    from app.webhooks import views_deliveries
    from tests.test_console_scale import statements

    monkeypatch.setattr(views_deliveries, "DELIVERIES_PER_PAGE", 1)
    monkeypatch.setattr(views_deliveries, "COUNT_AHEAD", 2)
    for _ in range(4):
        github.send_fixture("issues.edited")
    base = f"/endpoints/{github.endpoint_id}/deliveries"
    with statements(app) as ran:
        first = text(client.get(base))
    assert "Page 1 of 2+ · 2+ deliveries" in first and 'rel="next"' in first
    counts = [sql for sql, _ in ran if "count(" in sql and "FROM deliveries" in sql]
    assert len(counts) == 1 and "LIMIT" in counts[0], counts
    third = text(client.get(f"{base}?page=3"))
    assert "Page 3 of 4 · 4 deliveries" in third and 'rel="next"' in third
    last = text(client.get(f"{base}?page=4"))
    assert "Page 4 of 4 · 4 deliveries" in last and 'rel="next"' not in last


def test_replay_answers_with_the_new_row(app, engineer_client, viewer_client, mixed, drain):
    with app.app_context():
        processed = db.session.scalars(
            db.select(Delivery).where(Delivery.status == "processed")
        ).one()
        refused = db.session.scalars(
            db.select(Delivery).where(Delivery.verdict == "unauthorized")
        ).one()
        processed_pk, delivery_id, refused_pk = processed.id, processed.delivery_id, refused.id
    assert viewer_client.post(f"/deliveries/{processed_pk}/replay").status_code == 403
    # The button asks first and says what it will do, naming the provider's delivery id.
    log = text(engineer_client.get(f"/endpoints/{mixed.endpoint_id}/deliveries"))
    asks = re.search(rf'hx-post="/deliveries/{processed_pk}/replay" hx-confirm="([^"]+)"', log)
    assert asks, log
    assert asks.group(1).startswith(f"Replay delivery {delivery_id}: it will be processed again")
    assert "as a new delivery" in asks.group(1)
    response = engineer_client.post(f"/deliveries/{processed_pk}/replay", headers=HX)
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#delivery-rows"
    assert response.headers["HX-Reswap"] == "afterbegin"
    row = text(response)
    assert row.lstrip().startswith("{#") or "<tr id=" in row
    assert f"{delivery_id}#replay-1" in row and 'class="fresh"' in row
    assert f"replay of {delivery_id}" in row
    assert drain() == 0
    with app.app_context():
        copy = db.session.scalars(
            db.select(Delivery).where(Delivery.delivery_id == f"{delivery_id}#replay-1")
        ).one()
        assert copy.status == "processed" and copy.case_id == 1
        assert db.session.scalar(db.select(db.func.count(Case.id))) == 1  # same case
    no = engineer_client.post(f"/deliveries/{refused_pk}/replay", headers=HX)
    assert no.status_code == 409 and "never authentic" in text(no)


def test_replay_of_an_unfinished_delivery_requeues_it(app, engineer_client, github):
    github.send_fixture("issues.opened")  # stored, queued, not yet processed
    with app.app_context():
        delivery_pk = db.session.scalar(db.select(Delivery.id))
    log = text(engineer_client.get(f"/endpoints/{github.endpoint_id}/deliveries"))
    assert "it has not finished processing, so it is queued again" in log
    response = engineer_client.post(f"/deliveries/{delivery_pk}/replay", headers=HX)
    assert response.headers["HX-Retarget"] == f"#delivery-row-{delivery_pk}"
    assert response.headers["HX-Reswap"] == "outerHTML"
    plain = engineer_client.post(f"/deliveries/{delivery_pk}/replay")
    assert plain.status_code == 302
    assert "queued again" in text(engineer_client.get(plain.headers["Location"]))


def test_delivery_page_links_back_to_the_log(app, client, github):
    github.send_fixture("issues.opened")
    with app.app_context():
        delivery_pk = db.session.scalar(db.select(Delivery.id))
    page = text(client.get(f"/deliveries/{delivery_pk}"))
    assert f'href="/endpoints/{github.endpoint_id}/deliveries"' in page


# --- config endpoints are read-only -----------------------------------------------------------


@pytest.fixture
def config_endpoint(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CASEHOOK_TEST_CONSOLE_SECRET", "from-env")
    (tmp_path / "github.yaml").write_text(
        textwrap.dedent(
            """\
            endpoints:
              - id: gh-config
                provider: github
                name: from-yaml
                secret_env: CASEHOOK_TEST_CONSOLE_SECRET
                commands:
                  - name: p1-issues
                    trigger: issues.labeled
                    action: open_case
            """
        )
    )
    with app.app_context():
        sync(tmp_path)
    return "gh-config"


def test_config_endpoints_are_read_only(app, client, config_endpoint, drain):
    listed = text(client.get("/endpoints"))
    assert "from github.yaml" in listed
    page = text(client.get(f"/endpoints/{config_endpoint}"))
    assert "From github.yaml." in page and "flask config sync" in page
    assert "Rotate secret" not in page and "Delete endpoint" not in page
    assert "New command" not in page and ">Disable<" not in page
    assert "from $CASEHOOK_TEST_CONSOLE_SECRET" in page
    assert "from config" in page  # the command's badge
    base = f"/endpoints/{config_endpoint}"
    for path, data in (
        (base, {"name": "renamed"}),
        (f"{base}/rotate-secret", {}),
        (f"{base}/delete", {}),
        (f"{base}/commands", COMMAND),
        (f"{base}/commands/github.open/enabled", {"enabled": "0"}),
        (f"{base}/commands/p1-issues/delete", {}),
    ):
        refused = client.post(path, data=data, headers=HX)
        assert refused.status_code == 409, path
        assert "is managed by the config file github.yaml" in text(refused)
    assert client.get(f"{base}/commands/new").status_code == 409
    # Looking and testing still work: the secret comes from the environment.
    dry = client.post(f"{base}/dry-run", data={"subject": "fixture:issues.opened"}, headers=HX)
    assert dry.status_code == 200
    sent = client.post(f"{base}/test-delivery", data={"fixture": "issues.opened"}, headers=HX)
    assert "answered 202" in text(sent)
    assert drain() == 0
    with app.app_context():
        assert db.session.get(Endpoint, config_endpoint).name == "from-yaml"


# --- CSRF -------------------------------------------------------------------------------------


def test_console_writes_need_the_csrf_token(csrf_app, client, github):
    # The webhooks blueprint is CSRF-exempt for its ingest route; its console forms are not.
    base = f"/endpoints/{github.endpoint_id}"
    for path in (
        "/endpoints",
        base,
        f"{base}/rotate-secret",
        f"{base}/delete",
        f"{base}/commands",
        f"{base}/dry-run",
        f"{base}/test-delivery",
    ):
        refused = client.post(path, data={"name": "x"})
        assert refused.status_code == 400, path
        assert "The CSRF token is missing." in text(refused)
    assert github.send_fixture("issues.opened").status_code == 202  # ingest needs none
    page = text(client.get(f"/endpoints/{github.endpoint_id}"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = client.post(
        f"/endpoints/{github.endpoint_id}/rotate-secret", headers={"X-CSRFToken": token, **HX}
    )
    assert ok.status_code == 200


def test_settings_shown_as_json(app, client):
    endpoint_id, _, _ = new_endpoint(client, provider="gitlab", name="gl")
    client.post(
        f"/endpoints/{endpoint_id}",
        data={
            "name": "gl",
            "enabled": "1",
            "settings": json.dumps({"base_url": "https://gitlab.example.com"}),
        },
    )
    page = text(client.get(f"/endpoints/{endpoint_id}"))
    assert "https://gitlab.example.com" in page
