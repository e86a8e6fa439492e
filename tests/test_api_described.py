"""The described API: ``/api/openapi.json`` is valid OpenAPI 3.1 and lists every described
route, ``/api/docs`` renders it without anything from outside, answers match their schemas,
and refusals share one body (``{"error", "detail", "field"?}``) from one handler."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from app.accounts.auth import public
from app.cases.lifecycle import TransitionError
from app.errors import DomainError
from tests.test_api_case_actions import bearer
from tests.test_case_actions import make_case

#: Routes described so far (with @operation): each must be in the document.
DESCRIBED = {
    ("get", "/api/cases"),
    ("get", "/api/cases/summary"),
    ("get", "/api/cases/{case_id}"),
    ("post", "/api/cases/{case_id}/handle"),
    ("post", "/api/cases/{case_id}/callback"),
    ("get", "/api/events"),
    ("get", "/api/events/schemas"),
    ("get", "/api/me"),
    ("get", "/api/deliveries"),
    ("get", "/api/deliveries/{delivery_pk}"),
    ("post", "/api/deliveries/{delivery_pk}/replay"),
    ("get", "/api/endpoints"),
    ("post", "/api/endpoints"),
    ("get", "/api/endpoints/{endpoint_id}"),
    ("patch", "/api/endpoints/{endpoint_id}"),
    ("delete", "/api/endpoints/{endpoint_id}"),
    ("post", "/api/endpoints/{endpoint_id}/rotate-secret"),
    ("get", "/api/endpoints/{endpoint_id}/commands"),
    ("post", "/api/endpoints/{endpoint_id}/commands"),
    ("get", "/api/endpoints/{endpoint_id}/commands/{name}"),
    ("patch", "/api/endpoints/{endpoint_id}/commands/{name}"),
    ("delete", "/api/endpoints/{endpoint_id}/commands/{name}"),
    ("post", "/api/endpoints/{endpoint_id}/dry-run"),
    ("post", "/api/endpoints/{endpoint_id}/commands/draft"),
    ("get", "/api/subscriptions"),
    ("post", "/api/subscriptions"),
    ("get", "/api/subscriptions/{subscription_id}"),
    ("patch", "/api/subscriptions/{subscription_id}"),
    ("delete", "/api/subscriptions/{subscription_id}"),
    ("post", "/api/subscriptions/{subscription_id}/rotate-secret"),
    ("post", "/api/subscriptions/{subscription_id}/test"),
    ("get", "/api/subscriptions/{subscription_id}/attempts"),
    ("post", "/api/subscriptions/{subscription_id}/replay"),
    # branches, handoffs, outputs, agents
    ("get", "/api/cases/{case_id}/branches"),
    ("get", "/api/cases/{case_id}/branches/{branch_id}"),
    ("post", "/api/cases/{case_id}/branches/fork"),
    ("post", "/api/cases/{case_id}/branches/{branch_id}/switch"),
    ("patch", "/api/cases/{case_id}/branches/{branch_id}"),
    ("post", "/api/cases/{case_id}/branches/{branch_id}/revive"),
    ("post", "/api/cases/{case_id}/branches/{branch_id}/notes"),
    ("get", "/api/attachments/{attachment_id}"),
    ("post", "/api/cases/{case_id}/handoffs"),
    ("get", "/api/cases/{case_id}/handoffs"),
    ("get", "/api/handoffs/{handoff_id}"),
    ("post", "/api/handoffs/{handoff_id}/claim"),
    ("get", "/api/queue"),
    ("post", "/api/cases/{case_id}/resolve"),
    ("get", "/api/cases/{case_id}/outputs"),
    ("post", "/api/cases/{case_id}/outputs"),
    ("patch", "/api/cases/{case_id}/outputs/{output_id}"),
    ("post", "/api/cases/{case_id}/outputs/{output_id}/regenerate"),
    ("post", "/api/cases/{case_id}/outputs/{output_id}/push"),
    ("get", "/api/cases/{case_id}/outputs/{output_id}/download"),
    ("get", "/api/agents"),
    ("post", "/api/agents"),
    ("get", "/api/agents/{name}"),
    ("patch", "/api/agents/{name}"),
    ("delete", "/api/agents/{name}"),
    ("post", "/api/cases/{case_id}/agent-runs"),
    ("get", "/api/agent-runs"),
    ("get", "/api/agent-runs/{run_id}"),
    ("post", "/api/agent-runs/{run_id}/cancel"),
    ("post", "/api/agent-runs/{run_id}/approve"),
}


@pytest.fixture
def spec(anonymous_client):
    response = anonymous_client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def conforms(spec: dict, method: str, path: str, response) -> None:
    """Assert that ``response`` matches what ``spec`` says ``method path`` answers."""
    answers = spec["paths"][path][method]["responses"]
    declared = answers.get(str(response.status_code)) or answers[f"{response.status_code // 100}XX"]
    schema = declared["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json)]
    assert not errors, errors


def test_openapi_is_valid_3_1_and_lists_every_described_route(spec):
    validate_openapi(spec)  # raises on an invalid document
    assert spec["openapi"].startswith("3.1")
    listed = {(method, path) for path, methods in spec["paths"].items() for method in methods}
    assert listed >= DESCRIBED
    handle = spec["paths"]["/api/cases/{case_id}/handle"]["post"]
    assert handle["x-required-role"] == "engineer"
    assert handle["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HandleBody"
    }
    actions = spec["components"]["schemas"]["HandleBody"]["properties"]["action"]["enum"]
    assert "acknowledge" in actions and "close" in actions
    assert spec["paths"]["/api/cases/{case_id}/callback"]["post"]["security"] == []
    # Bounds as JSON Schema says them (pydantic's own "ge"/"le" would be ignored by clients).
    limit = next(
        p for p in spec["paths"]["/api/events"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    assert '"ge":' not in json.dumps(spec) and '"le":' not in json.dumps(spec)


def test_docs_page_renders_every_operation_with_nothing_from_outside(anonymous_client, spec):
    response = anonymous_client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for path, methods in spec["paths"].items():
        for method in methods:
            assert f"{method.upper()} {path}" in html
    assert 'id="schema-HandleBody"' in html and "4XX" in html
    # Only our own files: no http(s) URL in src/href, and the console's CSP applies.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_case_answers_match_their_schemas(app, anonymous_client, api_token, spec):
    case_id = make_case(app)
    token = api_token("engineer")
    for url, path in [
        ("/api/cases", "/api/cases"),
        ("/api/cases?limit=1&status=open", "/api/cases"),
        ("/api/cases/summary", "/api/cases/summary"),
        (f"/api/cases/{case_id}", "/api/cases/{case_id}"),
        ("/api/cases/999", "/api/cases/{case_id}"),
        ("/api/cases?limit=0", "/api/cases"),
    ]:
        conforms(spec, "get", path, anonymous_client.get(url, headers=bearer(token)))
    url = f"/api/cases/{case_id}/handle"
    for body in ({"action": "acknowledge"}, {"action": "close"}, {"action": "close"}, {"x": 1}):
        response = anonymous_client.post(url, json=body, headers=bearer(token))
        conforms(spec, "post", "/api/cases/{case_id}/handle", response)


def test_cases_page_with_limit_and_after(app, anonymous_client, api_token):
    ids = {make_case(app) for _ in range(5)}
    headers = bearer(api_token("viewer"))
    seen, after, pages = [], None, 0
    while True:
        query = {"limit": 2, **({"after": after} if after else {})}
        body = anonymous_client.get("/api/cases", query_string=query, headers=headers).json
        seen += [case["id"] for case in body["cases"]]
        pages, after = pages + 1, body["next_after"]
        assert body["total"] == 5 and body["per_page"] == 2
        if after is None:
            break
    assert pages == 3 and len(seen) == 5 and set(seen) == ids
    # The old page/size keys still work and answer the same shape.
    second = anonymous_client.get("/api/cases?page=2&size=25", headers=headers).json
    assert second["cases"] == [] and second["page"] == 2 and second["next_after"] is None
    bad = anonymous_client.get("/api/cases?after=abc", headers=headers)
    assert bad.status_code == 400 and bad.json["field"] == "after"


def test_a_malformed_body_is_400_naming_the_field(app, anonymous_client, api_token):
    case_id = make_case(app)
    url = f"/api/cases/{case_id}/handle"
    headers = bearer(api_token("engineer"))
    wrong_type = anonymous_client.post(url, json={"action": ["close"]}, headers=headers)
    assert wrong_type.status_code == 400
    assert wrong_type.json["error"] == "invalid_input" and wrong_type.json["field"] == "action"
    not_json = anonymous_client.post(
        url, data="{", headers=headers, content_type="application/json"
    )
    assert not_json.status_code == 400 and not_json.json["error"] == "invalid_json"
    assert "send a JSON object" in not_json.json["detail"]
    bad_query = anonymous_client.get("/api/cases?limit=5000", headers=headers)
    assert bad_query.status_code == 400 and bad_query.json["field"] == "limit"


def test_illegal_transition_keeps_status_and_allowed(app, anonymous_client, api_token):
    case_id = make_case(app)
    url = f"/api/cases/{case_id}/handle"
    headers = bearer(api_token("engineer"))
    assert anonymous_client.post(url, json={"action": "close"}, headers=headers).status_code == 200
    refused = anonymous_client.post(url, json={"action": "resume"}, headers=headers)
    assert refused.status_code == 409
    assert refused.json["error"] == "illegal_transition"
    assert refused.json["status"] == "closed" and "open" in refused.json["allowed"]
    assert "field" not in refused.json


def test_one_handler_answers_domain_errors_json_or_page(app, anonymous_client):
    """A refusal that escapes any view: JSON for the API, the error page for people."""

    @public
    def refuse():
        raise TransitionError("a closed case cannot become parked; allowed: open", "closed")

    @public
    def refuse_field():
        raise DomainError("name is taken", status=409, error="name_taken", field="name")

    app.add_url_rule("/api/test-refusal", "test_api_refusal", refuse)
    app.add_url_rule("/api/test-refusal-field", "test_api_refusal_field", refuse_field)
    app.add_url_rule("/test-refusal", "test_console_refusal", refuse)
    api = anonymous_client.get("/api/test-refusal")
    assert api.status_code == 409
    assert api.json == {
        "error": "illegal_transition",
        "detail": "a closed case cannot become parked; allowed: open",
        "status": "closed",
        "allowed": ["open"],
    }
    field = anonymous_client.get("/api/test-refusal-field")
    assert field.status_code == 409
    assert field.json == {"error": "name_taken", "detail": "name is taken", "field": "name"}
    page = anonymous_client.get("/test-refusal", headers={"Accept": "text/html"})
    assert page.status_code == 409 and page.mimetype == "text/html"
    assert "a closed case cannot become parked" in page.get_data(as_text=True)
    wants_json = anonymous_client.get("/test-refusal", headers={"Accept": "application/json"})
    assert wants_json.json["error"] == "illegal_transition"
