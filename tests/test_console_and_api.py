"""The case table (page, fragment, poll), the case page, and the JSON API."""

import re

import pytest

from app.cases.models import Case
from app.extensions import db
from tests.conftest import fixture_payload


@pytest.fixture
def cases(app, github, drain):
    """Two GitHub cases (issue #1 open, PR #2 closed) and one failed CI case."""
    for name in (
        "issues.opened",
        "pull_request.opened",
        "issue_comment.created",
        "pull_request.closed",
    ):
        github.send_fixture(name)
    failed = fixture_payload("workflow_run.completed")
    failed["workflow_run"]["conclusion"] = "failure"
    github.send("workflow_run", failed)
    assert drain() == 0


def test_empty_table_says_what_to_do(client):
    page = client.get("/cases").get_data(as_text=True)
    assert "No cases yet" in page
    assert "flask demo" in page


def test_full_page_and_fragment_vary_on_hx_request(client, cases):
    page = client.get("/cases")
    assert "HX-Request" in page.headers["Vary"]
    assert "<html" in page.get_data(as_text=True)
    fragment = client.get("/cases", headers={"HX-Request": "true"})
    assert "HX-Request" in fragment.headers["Vary"]
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<div id="case-table"')
    assert "Spelling error in the README file" in body


def test_poll_answers_204_until_something_changes(client, github, drain, cases):
    fragment = client.get("/cases", headers={"HX-Request": "true"}).get_data(as_text=True)
    version = re.search(r'"since": "([^"]+)"', fragment).group(1)
    poll = {"HX-Request": "true"}
    assert client.get(f"/cases?since={version}", headers=poll).status_code == 204
    github.send_fixture("issues.edited")
    assert drain() == 0
    changed = client.get(f"/cases?since={version}", headers=poll)
    assert changed.status_code == 200
    assert f'"since": "{version}"' not in changed.get_data(as_text=True)


def test_filters_search_and_counts(client, cases):
    closed = client.get("/cases?status=closed", headers={"HX-Request": "true"})
    text = closed.get_data(as_text=True)
    assert "Update the README with new information" in text
    assert "Spelling error" not in text
    # Counts per status stay visible under a status filter.
    assert re.search(r'data-status="open">Open <span class="count">2<', text)
    assert re.search(r'data-status="closed">Closed <span class="count">1<', text)
    found = client.get("/cases?q=spelling", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Spelling error" in found and "octo-repo" not in found
    none = client.get("/cases?q=nothing-like-this").get_data(as_text=True)
    assert "No cases match these filters" in none


def test_pagination(app, client, cases):
    app.config["CASES_PER_PAGE"] = 2
    first = client.get("/cases").get_data(as_text=True)
    assert "Page 1 of 2" in first
    second = client.get("/cases?page=2").get_data(as_text=True)
    assert second.count('data-case-id="') == 1


def test_payload_text_is_escaped_everywhere(app, client, github, drain):
    payload = fixture_payload("issues.opened")
    payload["issue"]["title"] = '<img src=x onerror="alert(1)">'
    github.send("issues", payload)
    assert drain() == 0
    table = client.get("/cases").get_data(as_text=True)
    assert '<img src=x onerror="alert(1)">' not in table
    assert "&lt;img src=x onerror=" in table
    case_page = client.get("/cases/1").get_data(as_text=True)
    assert "<img src=x" not in case_page
    with app.app_context():
        from app.webhooks.models import Delivery

        delivery_pk = db.session.scalar(db.select(Delivery.id))
    raw = client.get(f"/deliveries/{delivery_pk}").get_data(as_text=True)
    assert "<img src=x" not in raw and "&lt;img src=x" in raw


def test_case_page_shows_timeline_and_deliveries(client, cases):
    page = client.get("/cases/1").get_data(as_text=True)
    assert "case.opened" in page and "case.updated" in page
    assert "issue_comment.created" in page
    assert "Codertocat commented" in page
    assert 'href="https://github.com/Codertocat/Hello-World/issues/1"' in page


def test_delivery_fragment_and_page(app, client, cases):
    with app.app_context():
        from app.webhooks.models import Delivery

        delivery = db.session.scalars(db.select(Delivery)).first()
        delivery_pk = delivery.id
    fragment = client.get(f"/deliveries/{delivery_pk}", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert "Raw body" in fragment.get_data(as_text=True)
    assert "<html" in client.get(f"/deliveries/{delivery_pk}").get_data(as_text=True)


def test_missing_case_is_a_readable_404(client):
    response = client.get("/cases/999")
    assert response.status_code == 404
    assert "there is no case 999" in response.get_data(as_text=True)


def test_endpoints_page_lists_urls(client, github):
    page = client.get("/endpoints").get_data(as_text=True)
    assert f"http://casehook.test/webhooks/github/{github.endpoint_id}" in page


def test_endpoints_page_empty_state(client):
    assert "flask endpoints create --provider github" in client.get("/endpoints").get_data(
        as_text=True
    )


def test_api_lists_cases_with_filters(client, cases):
    body = client.get("/api/cases").json
    assert body["total"] == 3
    first = body["cases"][0]
    assert set(first) >= {
        "id",
        "title",
        "status",
        "provider",
        "dedup_key",
        "delivery_count",
        "created_at",
        "updated_at",
        "closed_reason",
    }
    closed = client.get("/api/cases?status=closed").json
    assert [c["dedup_key"] for c in closed["cases"]] == ["Codertocat/Hello-World#2"]
    assert closed["cases"][0]["closed_reason"] == "auto"
    assert client.get("/api/cases?q=README&provider=github").json["total"] == 2
    assert client.get("/api/cases?provider=gitlab").json == {
        "cases": [],
        "total": 0,
        "page": 1,
        "per_page": 25,
        "next_after": None,
    }
    assert client.get("/api/cases?page=2").json["cases"] == []


def test_api_case_with_events(app, client, cases):
    with app.app_context():
        case_id = db.session.scalar(
            db.select(Case.id).where(Case.dedup_key == "Codertocat/Hello-World#1")
        )
    body = client.get(f"/api/cases/{case_id}").json
    assert body["delivery_count"] == 2
    assert [e["type"] for e in body["events"]] == ["case.opened", "case.updated"]
    assert body["events"][1]["event_type"] == "issue_comment.created"
    assert body["events"][0]["causation_id"]


def test_api_unknown_case_is_json_404(client):
    response = client.get("/api/cases/12345")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "detail": "there is no case 12345"}


def test_health_probes(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "attachments": "ok"},
    }


def test_readyz_reports_redis_down(app, client):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["redis"].startswith("error")
