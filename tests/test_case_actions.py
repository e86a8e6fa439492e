"""Working a case from the console: the case page's actions (htmx posts), the case table's
filters (mine, assignee, severity, endpoint) and bulk actions, per role; and the
``flask cases`` CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from app import clock
from app.branches.service import ensure_root
from app.cases.models import Case
from app.extensions import db
from app.webhooks.cli import create_endpoint
from tests.conftest import BOTH_DATABASES
from tests.test_browser import _sign_in, browser_page, live_server  # noqa: F401  (fixtures)

HX = {"HX-Request": "true"}
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def make_case(app, title="Disk full on db-1", *, endpoint_id=None, **fields) -> int:
    """A case stored directly (status open unless ``fields`` say otherwise); returns its id."""
    with app.app_context():
        now = fields.pop("at", None) or clock.now()
        values = {"provider": "github", "status": "open", "severity": "warning", "tags": []}
        case = Case(title=title, endpoint_id=endpoint_id, created_at=now, updated_at=now,
                    status_changed_at=now, **{**values, **fields})  # fmt: skip
        db.session.add(case)
        db.session.commit()
        ensure_root(case)  # as the case.opened subscriber does
        db.session.commit()
        return case.id


def make_endpoint(app, name="acme/api", provider="github") -> str:
    with app.app_context():
        return create_endpoint(provider, name)[0].id


def load(app, case_id: int) -> dict:
    """The case as the API shows it, plus its events (type, actor, payload)."""
    with app.app_context():
        case = db.session.get(Case, case_id)
        events = [(e.type, e.actor, e.payload) for e in case.events]
        return {**case.to_dict(), "events": events}


def act(client, case_id, **form):
    return client.post(f"/cases/{case_id}/handle", data=form, headers=HX)


# --- The case page --------------------------------------------------------------------------


def test_viewer_sees_the_state_but_no_actions_and_may_not_post(app, viewer_client):
    case_id = make_case(app)
    page = viewer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="case-actions"' in page
    assert "needs the engineer role; you have the viewer role" in page
    assert "/handle" not in page
    for action in ("assign", "close", "severity", "tag"):
        response = act(viewer_client, case_id, action=action, user="me")
        assert response.status_code == 403
    assert load(app, case_id)["events"] == []


def test_assign_to_me_rerenders_actions_header_and_timeline(app, engineer_client):
    case_id = make_case(app)
    response = act(engineer_client, case_id, action="assign", user="me")
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {"case-changed": {"source": "cases"}}
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section class="case-actions" id="case-actions"')
    assert "Assigned to engineer@example.com." in body
    # The header and the timeline come along out of band, so the page agrees with the case.
    assert re.search(r'<header class="case-head" id="case-head" hx-swap-oob="true">', body)
    assert re.search(r'<ol class="timeline" id="timeline" hx-swap-oob="true">', body)
    assert re.search(r'id="case-assignee">engineer@example.com <small class="muted">\(you\)', body)
    assert "engineer@example.com took the case" in body  # the timeline says who did what
    # "Assign to me" is gone now that it is mine; Unassign appears.
    assert "Assign to me" not in body and "Unassign" in body
    case = load(app, case_id)
    assert case["assignee"] == "engineer@example.com"
    assert case["events"] == [
        ("case.assigned", "engineer@example.com", {"assignee": "engineer@example.com"})
    ]
    # Assigning the assignee again changes nothing and writes no event.
    again = act(engineer_client, case_id, action="assign", user="engineer@example.com")
    assert "Nothing to change." in again.get_data(as_text=True)
    assert len(load(app, case_id)["events"]) == 1


def test_assign_to_a_user_then_unassign(app, engineer_client, make_user):
    make_user("engineer", "ann@example.com")
    make_user("viewer", "vic@example.com")
    case_id = make_case(app)
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert '<option value="ann@example.com"' in page
    assert '<option value="vic@example.com"' not in page  # viewers cannot work cases
    assert act(engineer_client, case_id, action="assign", user="ann@example.com").status_code == 200
    assert load(app, case_id)["assignee"] == "ann@example.com"

    refused = act(engineer_client, case_id, action="assign", user="vic@example.com")
    assert refused.status_code == 422
    assert "vic@example.com is a viewer and cannot work cases" in refused.get_data(as_text=True)
    unknown = act(engineer_client, case_id, action="assign", user="nobody@example.com")
    assert unknown.status_code == 422
    assert "There is no active user &#39;nobody@example.com&#39;" in unknown.get_data(as_text=True)

    assert act(engineer_client, case_id, action="unassign").status_code == 200
    case = load(app, case_id)
    assert case["assignee"] is None
    assert [e[2] for e in case["events"]] == [{"assignee": "ann@example.com"}, {"assignee": None}]


def test_close_and_reopen_with_notes_and_illegal_transitions(app, engineer_client):
    case_id = make_case(app)
    closed = act(engineer_client, case_id, action="close", note="duplicate of #12")
    assert closed.status_code == 200
    body = closed.get_data(as_text=True)
    assert 'id="case-status">closed<' in body and "(manual)" in body
    assert "duplicate of #12" in body  # the note, on the timeline
    assert ">Reopen<" in body and ">Close<" not in body

    again = act(engineer_client, case_id, action="close")
    assert again.status_code == 422
    text = again.get_data(as_text=True)
    assert 'role="alert">A closed case cannot become closed; allowed: open.' in text
    case = load(app, case_id)
    assert (case["status"], case["closed_reason"]) == ("closed", "manual")
    assert case["events"] == [
        ("case.closed", "engineer@example.com",
         {"from": "open", "to": "closed", "reason": "manual", "note": "duplicate of #12"}),
    ]  # fmt: skip

    reopened = act(engineer_client, case_id, action="reopen")
    assert reopened.status_code == 200
    assert load(app, case_id)["events"][-1][:2] == ("case.reopened", "engineer@example.com")

    refused = act(engineer_client, case_id, action="reopen")
    assert refused.status_code == 422
    assert (
        "Only resolved or closed cases can be reopened; this case is open (allowed from open: "
        "escalated, parked, resolved, closed)." in refused.get_data(as_text=True)
    )


def test_actions_reload_when_another_feature_changed_the_case(app, viewer_client):
    case_id = make_case(app)
    page = viewer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'hx-trigger="case-refresh" data-case-panel="cases"' in page  # static/console.js
    with app.app_context():
        from app.cases import lifecycle

        lifecycle.transition(db.session.get(Case, case_id), "parked", actor="ann@example.com")
        db.session.commit()
    fragment = viewer_client.get(f"/cases/{case_id}/actions", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert 'id="case-status">parked<' in body and 'id="timeline" hx-swap-oob="true"' in body


def test_reopen_a_resolved_case_and_close_one(app, engineer_client):
    resolved = make_case(app, status="resolved")
    assert "From resolved a case can become: open, closed." in engineer_client.get(
        f"/cases/{resolved}"
    ).get_data(as_text=True)
    assert act(engineer_client, resolved, action="reopen").status_code == 200
    assert load(app, resolved)["status"] == "open"
    other = make_case(app, status="resolved")
    assert act(engineer_client, other, action="close").status_code == 200
    assert load(app, other)["status"] == "closed"


def test_resume_a_parked_case(app, engineer_client):
    # E.g. one an inactivity rule parked: no handoff to claim, so it is resumed here.
    case_id = make_case(app, status="parked")
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert ">Resume work<" in page
    response = act(engineer_client, case_id, action="resume", note="customer answered")
    assert response.status_code == 200
    assert "The case is open again." in response.get_data(as_text=True)
    assert load(app, case_id)["events"] == [
        ("case.reactivated", "engineer@example.com",
         {"from": "parked", "to": "open", "note": "customer answered"}),
    ]  # fmt: skip
    refused = act(engineer_client, case_id, action="resume")
    assert refused.status_code == 422
    assert "Only parked or escalated cases can be resumed" in refused.get_data(as_text=True)


def test_severity_and_tags(app, engineer_client):
    case_id = make_case(app)
    response = act(engineer_client, case_id, action="severity", severity="critical")
    assert 'id="case-severity">critical<' in response.get_data(as_text=True)
    bad = act(engineer_client, case_id, action="severity", severity="apocalyptic")
    assert bad.status_code == 422
    assert "Severity must be one of critical, error, warning, info." in bad.get_data(as_text=True)

    tagged = act(engineer_client, case_id, action="tag", tags="DB, customer-x")
    body = tagged.get_data(as_text=True)
    assert '<span class="tag">db</span>' in body and "Remove tag customer-x" in body
    untagged = act(engineer_client, case_id, action="untag", tags="db")
    assert "Remove tag db" not in untagged.get_data(as_text=True)
    empty = act(engineer_client, case_id, action="tag", tags=" , ")
    assert empty.status_code == 422 and "Give at least one tag." in empty.get_data(as_text=True)

    case = load(app, case_id)
    assert case["severity"] == "critical" and case["tags"] == ["customer-x"]
    assert [e[0] for e in case["events"]] == ["case.severity_changed", "case.tagged", "case.tagged"]
    assert case["events"][1][2] == {
        "tags": ["db", "customer-x"],
        "added": ["db", "customer-x"],
        "removed": [],
    }


def test_without_javascript_a_form_post_redirects_back_with_a_message(app, engineer_client):
    case_id = make_case(app)
    response = engineer_client.post(f"/cases/{case_id}/handle", data={"action": "close"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/cases/{case_id}")
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Closed the case." in page
    engineer_client.post(f"/cases/{case_id}/handle", data={"action": "close"})
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'class="flash flash-error"' in page and "allowed: open" in page


def test_csrf_token_is_required_on_case_actions(csrf_app, make_user):
    from tests.conftest import signed_in_client

    client = signed_in_client(csrf_app, make_user("engineer", "eve@example.com"))
    case_id = make_case(csrf_app)
    refused = act(client, case_id, action="close")
    assert refused.status_code == 400
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    accepted = client.post(
        f"/cases/{case_id}/handle", data={"action": "close"}, headers={**HX, "X-CSRFToken": token}
    )
    assert accepted.status_code == 200


def test_timeline_escapes_what_people_typed(app, engineer_client):
    case_id = make_case(app)
    act(engineer_client, case_id, action="tag", tags="<b>bold</b>")
    act(engineer_client, case_id, action="close", note='<img src=x onerror="alert(1)">')
    page = engineer_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;img src=x onerror=" in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_unknown_case_and_unknown_action(app, engineer_client):
    assert act(engineer_client, 999, action="close").status_code == 404
    case_id = make_case(app)
    response = act(engineer_client, case_id, action="explode")
    assert response.status_code == 422
    assert "Unknown action &#39;explode&#39;" in response.get_data(as_text=True)


# --- The case table: columns, filters, counts -----------------------------------------------


@pytest.fixture
def table(app, make_user):
    """Five cases on two endpoints: two assigned to the engineer, one to ann, two to nobody."""
    engineer = make_user("engineer", "engineer@example.com")
    ann = make_user("engineer", "ann@example.com")
    api, web = make_endpoint(app, "acme/api"), make_endpoint(app, "acme/web")
    ids = {
        "mine-open": make_case(app, "Mine open", endpoint_id=api, assignee_id=engineer,
                               severity="critical"),
        "mine-parked": make_case(app, "Mine parked", endpoint_id=web, assignee_id=engineer,
                                 status="parked"),
        "ann": make_case(app, "Ann's case", endpoint_id=api, assignee_id=ann, severity="error"),
        "free": make_case(app, "Free case", endpoint_id=web, provider="gitlab"),
        "closed": make_case(app, "Closed case", endpoint_id=api, status="closed",
                            closed_reason="manual"),
    }  # fmt: skip
    from tests.conftest import signed_in_client

    return ids, signed_in_client(app, engineer), {"api": api, "web": web}


def rows(response) -> list[int]:
    return [
        int(i) for i in re.findall(r'<tr data-case-id="(\d+)"', response.get_data(as_text=True))
    ]


def test_table_shows_assignees_and_a_checkbox_per_row_for_engineers(app, table, viewer_client):
    ids, client, _ = table
    page = client.get("/cases").get_data(as_text=True)
    assert '<td class="assignee">ann@example.com</td>' in page
    assert f'name="case_id" value="{ids["free"]}" form="bulk-form"' in page
    assert 'id="bulk-form"' in page
    # The poll pauses while a row is ticked, so a refresh cannot drop the selection.
    assert (
        'hx-trigger="every 3s" data-poll-paused-while="#case-table input[name=case_id]:checked"'
        in page
    )
    seen = viewer_client.get("/cases").get_data(as_text=True)
    assert 'name="case_id"' not in seen and 'id="bulk-form"' not in seen
    assert '<td class="assignee">ann@example.com</td>' in seen


@BOTH_DATABASES
def test_mine_and_other_filters_stay_in_the_url(app, table):
    ids, client, endpoints = table
    mine = client.get("/cases?mine=1", headers=HX)
    assert sorted(rows(mine)) == sorted([ids["mine-open"], ids["mine-parked"]])
    assert mine.headers["HX-Push-Url"] == "/cases?mine=1"
    text = mine.get_data(as_text=True)
    # Counts per status under the other filters, links keep the filters.
    assert re.search(r'data-status="parked">Parked <span class="count">1<', text)
    assert 'href="/cases?status=open&amp;mine=1"' in text

    assert rows(client.get("/cases?assignee=ann@example.com", headers=HX)) == [ids["ann"]]
    unassigned = client.get("/cases?assignee=none", headers=HX)
    assert sorted(rows(unassigned)) == sorted([ids["free"], ids["closed"]])
    assert rows(client.get("/cases?severity=critical", headers=HX)) == [ids["mine-open"]]
    web = client.get(f"/cases?endpoint={endpoints['web']}", headers=HX)
    assert sorted(rows(web)) == sorted([ids["mine-parked"], ids["free"]])
    assert rows(client.get("/cases?provider=gitlab&q=free", headers=HX)) == [ids["free"]]
    combined = client.get(f"/cases?endpoint={endpoints['api']}&status=open&mine=1", headers=HX)
    assert rows(combined) == [ids["mine-open"]]
    assert combined.headers["HX-Push-Url"] == (
        f"/cases?status=open&endpoint={endpoints['api']}&mine=1"
    )
    # The full page keeps the choices selected in the filter form.
    page = client.get("/cases?mine=1&severity=error").get_data(as_text=True)
    assert 'name="mine" value="1" checked' in page
    assert '<option value="error" selected>' in page


def test_mine_filter_with_nothing_assigned_says_what_to_do(app, engineer_client):
    make_case(app)
    page = engineer_client.get("/cases?mine=1").get_data(as_text=True)
    assert "No cases are assigned to you." in page and "Assign to me" in page


# --- Bulk actions ---------------------------------------------------------------------------


def bulk(client, ids, action, **form):
    data = {"case_id": [str(i) for i in ids], "action": action, **form}
    return client.post("/cases/bulk", data=data, headers=HX)


@BOTH_DATABASES
def test_bulk_assign_to_me_touches_only_the_selected_rows(app, table):
    ids, client, _ = table
    response = bulk(client, [ids["free"], ids["ann"]], "assign_me", status="", mine="")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="case-table"')  # the refreshed table
    assert "Assigned 2 cases." in text
    assert load(app, ids["free"])["assignee"] == "engineer@example.com"
    assert load(app, ids["ann"])["assignee"] == "engineer@example.com"
    assert load(app, ids["closed"])["assignee"] is None  # not selected: untouched
    assert load(app, ids["free"])["events"][-1][:2] == ("case.assigned", "engineer@example.com")


def test_bulk_assign_to_a_user_close_and_tag(app, table):
    ids, client, _ = table
    assert bulk(client, [ids["free"]], "assign", user="ann@example.com").status_code == 200
    assert load(app, ids["free"])["assignee"] == "ann@example.com"

    # Closing a closed case is refused for that row only; the others close.
    closed = bulk(client, [ids["free"], ids["closed"], ids["mine-parked"]], "close")
    text = closed.get_data(as_text=True)
    assert "Closed 2 cases." in text
    assert f"#{ids['closed']} refused: A closed case cannot become closed; allowed: open." in text
    assert load(app, ids["free"])["closed_reason"] == "manual"
    assert load(app, ids["mine-parked"])["status"] == "closed"
    assert load(app, ids["mine-open"])["status"] == "open"

    tagged = bulk(client, [ids["mine-open"], ids["ann"]], "tag", tags="outage-42")
    assert "Tagged 2 cases." in tagged.get_data(as_text=True)
    assert load(app, ids["ann"])["tags"] == ["outage-42"]
    assert load(app, ids["free"])["tags"] == []
    again = bulk(client, [ids["mine-open"]], "tag", tags="outage-42")
    assert f"Already so: #{ids['mine-open']}." in again.get_data(as_text=True)


def test_bulk_answer_keeps_the_filters(app, table):
    ids, client, _ = table
    # The filter form rides along: the answer is the same filtered table, refreshed.
    response = bulk(client, [ids["free"]], "close", status="open")
    assert response.status_code == 200
    assert ids["free"] not in rows(response)
    assert sorted(rows(response)) == sorted([ids["mine-open"], ids["ann"]])
    assert 'aria-current="true" data-status="open"' in response.get_data(as_text=True)


def test_bulk_refusals(app, table, viewer_client):
    ids, client, _ = table
    nothing = bulk(client, [], "close")
    assert nothing.status_code == 422
    assert 'role="alert">Select at least one case first.' in nothing.get_data(as_text=True)
    no_action = bulk(client, [ids["free"]], "explode")
    assert no_action.status_code == 422
    assert "Choose what to do with the selected cases." in no_action.get_data(as_text=True)
    unknown = bulk(client, [ids["free"]], "assign", user="nobody@example.com")
    assert unknown.status_code == 422
    assert load(app, ids["free"])["assignee"] is None
    assert bulk(viewer_client, [ids["free"]], "close").status_code == 403
    assert load(app, ids["free"])["status"] == "open"


def test_bulk_without_javascript_redirects_to_the_table(app, table):
    ids, client, _ = table
    response = client.post(
        "/cases/bulk", data={"case_id": [str(ids["free"])], "action": "close", "mine": "1"}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/cases?mine=1")
    assert load(app, ids["free"])["status"] == "closed"


# --- CLI ------------------------------------------------------------------------------------


def test_cli_list_show_close_reopen(app, runner):
    first = make_case(app, "Disk full", severity="critical")
    second = make_case(app, "Cert expires", status="closed", closed_reason="auto")

    listed = runner.invoke(args=["cases", "list"])
    assert listed.exit_code == 0, listed.output
    assert "Disk full" in listed.output and "Cert expires" in listed.output
    only_closed = runner.invoke(args=["cases", "list", "--status", "closed", "--json"])
    assert [c["id"] for c in json.loads(only_closed.output)] == [second]
    empty = runner.invoke(args=["cases", "list", "--status", "parked"])
    assert "No cases with status parked." in empty.output

    closed = runner.invoke(args=["cases", "close", str(first), "--note", "fixed by hand"])
    assert closed.exit_code == 0, closed.output
    assert f"Closed case #{first} (manual)." in closed.output
    again = runner.invoke(args=["cases", "close", str(first)])
    assert again.exit_code == 1
    assert "a closed case cannot become closed; allowed: open" in again.output
    bad_reason = runner.invoke(args=["cases", "close", str(first), "--reason", "callback"])
    assert bad_reason.exit_code == 2

    shown = runner.invoke(args=["cases", "show", str(first)])
    assert f"#{first} Disk full" in shown.output
    assert "case.closed  by cli  manual" in shown.output
    as_json = json.loads(runner.invoke(args=["cases", "show", str(first), "--json"]).output)
    assert as_json["status"] == "closed" and as_json["events"][0]["actor"] == "cli"

    assert runner.invoke(args=["cases", "reopen", str(first)]).exit_code == 0
    assert load(app, first)["status"] == "open"
    missing = runner.invoke(args=["cases", "show", "999"])
    assert missing.exit_code == 1 and "there is no case 999" in missing.output


# --- In the browser -------------------------------------------------------------------------


@pytest.mark.browser
def test_in_the_browser_bulk_assign_keeps_the_selection_then_work_a_case(
    app,
    make_user,
    live_server,  # noqa: F811  (the fixture imported from test_browser)
    browser_page,  # noqa: F811
):
    page = browser_page  # live_server: POLL_SECONDS=1, CSRF on
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    make_user("engineer", "engineer@example.com")
    first, second, third = (make_case(app, f"Case {n}") for n in ("one", "two", "three"))
    _sign_in(page, live_server, "engineer@example.com")
    page.locator(f"tr[data-case-id='{third}']").wait_for()

    # Ticked rows survive the poll: it pauses while anything is ticked.
    page.get_by_label(f"Select case #{first}").check()
    page.get_by_label(f"Select case #{second}").check()
    newcomer = make_case(app, "Arrived while choosing")
    page.wait_for_timeout(2500)  # more than two poll intervals
    assert page.locator(f"tr[data-case-id='{newcomer}']").count() == 0
    assert page.get_by_label(f"Select case #{first}").is_checked()

    page.locator("#bulk-form").get_by_role("button", name="Assign to me").click()
    page.get_by_text("Assigned 2 cases.").wait_for()
    for case_id in (first, second):
        row = page.locator(f"tr[data-case-id='{case_id}']")
        assert row.locator("td.assignee").inner_text() == "engineer@example.com"
    assert page.locator(f"tr[data-case-id='{third}'] td.assignee").inner_text() == "—"
    # Nothing ticked any more: the poll resumes and brings the newcomer.
    page.locator(f"tr[data-case-id='{newcomer}']").wait_for()

    page.get_by_label(f"Select case #{third}").check()
    page.get_by_label("Tag to add to the selected cases").fill("outage-7")
    page.locator("#bulk-form").get_by_role("button", name="Add tag").click()
    page.locator(f"tr[data-case-id='{third}'] .tag", has_text="outage-7").wait_for()

    page.get_by_label(f"Select case #{newcomer}").check()
    page.locator("#bulk-form").get_by_role("button", name="Close").click()
    page.get_by_text("Closed 1 case.").wait_for()
    assert asked == ["Close the selected cases (reason: manual)?"]
    assert load(app, newcomer)["closed_reason"] == "manual"

    page.get_by_label("Mine only").check()
    page.wait_for_url("**/cases?mine=1")
    page.locator(f"tr[data-case-id='{third}']").wait_for(state="detached")
    assert page.locator("tr[data-case-id]").count() == 2

    # The case page: every action updates the header and the timeline in place.
    page.locator(f"tr[data-case-id='{first}']").get_by_role("link").click()
    page.wait_for_url(f"**/cases/{first}")
    # The toolbar's forms open on demand, from the keyboard too (Enter on the summary).
    page.locator("summary", has_text="Close…").focus()
    page.keyboard.press("Enter")
    page.get_by_label("Why close (optional)").fill("duplicate")
    page.get_by_role("button", name="Close", exact=True).click()
    page.locator("#case-status", has_text="closed").wait_for()
    timeline = page.locator("#timeline")
    closed = timeline.locator("[data-type='case.closed']")
    assert "engineer@example.com closed the case" in closed.inner_text()
    assert "duplicate" in closed.inner_text()
    page.locator("summary", has_text="Reopen…").click()
    page.get_by_role("button", name="Reopen").click()
    page.locator("#case-status", has_text="open").wait_for()

    page.locator("summary", has_text="More…").click()
    page.get_by_label("Set the severity").select_option("critical")
    page.get_by_role("button", name="Set severity").click()
    page.locator("#case-severity", has_text="critical").wait_for()
    page.get_by_label("Add tags (comma-separated)").fill("db, prod")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_role("button", name="Remove tag prod").click()
    page.locator("#case-tags", has_text="db").wait_for()
    page.get_by_role("button", name="Remove tag prod").wait_for(state="detached")

    # Someone else closed it meanwhile: the refusal says what is allowed, in place.
    with app.app_context():
        from app.cases import service

        service.handle(db.session.get(Case, first), "close", actor="ann@example.com")
        db.session.commit()
    page.locator("summary", has_text="Close…").click()
    page.get_by_role("button", name="Close", exact=True).click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "A closed case cannot become closed; allowed: open."
    assert page.locator("#case-status").inner_text() == "closed"
