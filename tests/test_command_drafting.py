"""Drafting a command from a sentence (issue 10), against a local chat-completions server:
a valid draft becomes the pre-filled command form with a dry run; an invalid or non-JSON
answer is refused with the validation message; nothing is stored until the form is saved;
the same over the API; without an LLM the box says how to configure one."""

from __future__ import annotations

import copy
import html as html_lib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import create_engine, text

from app.extensions import db
from app.webhooks.models import CommandRecord
from tests.conftest import fixture_payload
from tests.test_browser import _sign_in, browser_page, live_server  # noqa: F401  (fixtures)

HX = {"HX-Request": "true"}

P1_COMMAND = {
    "name": "p1-issues",
    "description": "Critical case for issues labelled p1",
    "trigger": ["issues.labeled"],
    "conditions": [{"path": "label.name", "op": "eq", "value": "p1"}],
    "priority": 10,
    "action": "open_case",
    "title_template": "P1: {{ issue.title }}",
}


class ChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` in a thread answering ``self.answer`` (a
    string: the message content) or, with ``self.status`` not 200, an error. Records each
    request, and (``self.probe``) what a callable saw while the request was in flight."""

    def __init__(self) -> None:
        self.answer = "```json\n" + json.dumps(P1_COMMAND) + "\n```"
        self.status = 200
        self.refuse_response_format = False
        self.delay = 0.0
        self.requests: list[dict] = []
        self.probe = None
        self.probed: list = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                time.sleep(server.delay)
                if server.probe:
                    server.probed.append(server.probe())
                if server.refuse_response_format and "response_format" in body:
                    return self._send(400, b'{"error": "response_format is not supported"}')
                if server.status != 200:
                    return self._send(server.status, b'{"error": {"message": "overloaded"}}')
                completion = {
                    "object": "chat.completion",
                    "model": "local-drafter-7b",
                    "choices": [{"index": 0, "message": {"role": "assistant",
                                                         "content": server.answer}}],
                }  # fmt: skip
                return self._send(200, json.dumps(completion).encode())

            def _send(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat(app):
    server = ChatServer()
    app.config.update(LLM_BASE_URL=server.url + "/v1", LLM_MODEL="drafter", LLM_API_KEY="sk-t")
    yield server
    server.close()


@pytest.fixture
def no_llm(app, monkeypatch):
    for key in ("LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    app.config.update(LLM_BASE_URL="", LLM_MODEL="")


def labeled(label: str) -> dict:
    payload = copy.deepcopy(fixture_payload("issues.opened"))
    payload["action"] = "labeled"
    payload["label"] = {"name": label}
    return payload


@pytest.fixture
def deliveries(github):
    """Three stored deliveries: labelled p1, labelled docs, and an opened issue."""
    assert github.send("issues", labeled("p1")).status_code == 202
    assert github.send("issues", labeled("docs")).status_code == 202
    assert github.send_fixture("issues.opened").status_code == 202
    return github


def stored(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count(CommandRecord.id)))


def page(response) -> str:
    return response.get_data(as_text=True)


def field(html: str, name: str) -> str:
    """The value of the form's input or textarea ``name``."""
    found = re.search(rf'<input name="{name}" value="([^"]*)"', html) or re.search(
        rf'<textarea name="{name}"[^>]*>([^<]*)</textarea>', html
    )
    assert found, f"no field {name}"
    return found.group(1)


# --- the console --------------------------------------------------------------------------------


def test_a_valid_draft_becomes_the_prefilled_form_with_a_dry_run(app, client, chat, deliveries):
    base = f"/endpoints/{deliveries.endpoint_id}"
    assert "Describe a command" in page(client.get(base))
    before = stored(app)
    sentence = "open a critical case when an issue gets the label p1, titled P1: and the title"
    response = client.post(f"{base}/commands/draft", data={"description": sentence}, headers=HX)
    assert response.status_code == 200, page(response)
    html = page(response)

    # The form, pre-filled with the draft and posting to the ordinary save.
    assert f'action="{base}/commands"' in html
    assert field(html, "name") == "p1-issues"
    assert field(html, "trigger") == "issues.labeled"
    assert field(html, "title_template") == "P1: {{ issue.title }}"
    assert field(html, "priority") == "10"
    assert 'name="conditions-1-path" value="label.name"' in html
    assert 'name="conditions-1-value" value="p1"' in html
    assert "Nothing is saved yet" in html and "local-drafter-7b" in html

    # The dry run over the three recent deliveries: only the p1 label matches, titled.
    rows = re.findall(r'<tr class="(runs|matched|skipped)">(.*?)</tr>', html, re.DOTALL)
    assert [kind for kind, _ in rows].count("runs") == 1 and len(rows) == 3
    assert "P1: Spelling error in the README file" in html
    assert "matched 1, would run 1, of 3 recent deliveries" in html

    # Nothing stored until the admin saves the ordinary form.
    assert stored(app) == before
    request = chat.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-t"
    assert request["body"]["response_format"] == {"type": "json_object"}
    system, user = request["body"]["messages"]
    assert "title_template" in system["content"] and "run_agent" in system["content"]
    assert sentence in user["content"] and "issues.labeled" in user["content"]
    assert "label.name" in user["content"]  # the payload's paths, to choose conditions from
    assert "Spelling error" not in user["content"]  # …but never the payload's values

    saved = client.post(
        f"{base}/commands",
        data={
            "name": field(html, "name"),
            "trigger": field(html, "trigger"),
            "action": "open_case",
            "priority": field(html, "priority"),
            "conditions-1-path": "label.name",
            "conditions-1-op": "eq",
            "conditions-1-value": "p1",
            "title_template": field(html, "title_template"),
        },
        headers=HX,
    )
    assert saved.status_code == 200 and "Saved command p1-issues" in page(saved)
    assert stored(app) == before + 1


@pytest.mark.parametrize(
    "answer, message",
    [
        ("Sure! I would open a case when the label is p1.", "the LLM's answer is not usable"),
        (json.dumps({**P1_COMMAND, "trigger": []}), "trigger: give at least one event type"),
        (json.dumps({**P1_COMMAND, "action": "escalate"}), "action: must be one of open_case"),
        (
            json.dumps({**P1_COMMAND, "title_template": "P1: {{ issue.title "}),
            "title_template: line 1",
        ),
        ('["a list", "not an object"]', "asked for a JSON object"),
    ],
)
def test_an_invalid_or_non_json_answer_is_refused_with_the_message(
    app, client, chat, deliveries, answer, message
):
    chat.answer = answer
    before = stored(app)
    response = client.post(
        f"/endpoints/{deliveries.endpoint_id}/commands/draft",
        data={"description": "p1 issues"},
        headers=HX,
    )
    assert response.status_code == 422
    html = html_lib.unescape(page(response))
    assert message in html, html
    assert 'id="command-form"' not in html
    assert stored(app) == before


def test_without_an_llm_the_box_says_how_to_configure_one(app, client, no_llm, github):
    base = f"/endpoints/{github.endpoint_id}"
    html = page(client.get(base))
    assert "Describe a command" in html
    help_text = re.search(r'id="command-draft-help">(.*?)</p>', html, re.DOTALL).group(1)
    for setting in ("LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY"):
        assert setting in help_text
    assert f'hx-post="{base}/commands/draft"' not in html
    response = client.post(f"{base}/commands/draft", data={"description": "x"}, headers=HX)
    assert response.status_code == 422 and "LLM_BASE_URL" in page(response)


def test_the_form_shows_progress_and_no_inline_script(client, chat, github):
    html = page(client.get(f"/endpoints/{github.endpoint_id}"))
    box = re.search(r'<details class="command-draft".*?</details>', html, re.DOTALL).group(0)
    assert 'hx-indicator="#command-draft-progress"' in box
    assert 'id="command-draft-progress" class="htmx-indicator' in box
    assert "<script" not in box
    assert not re.search(r"\son\w+=|hx-on", box)


def test_viewers_cannot_draft(viewer_client, chat, github):
    response = viewer_client.post(
        f"/endpoints/{github.endpoint_id}/commands/draft", data={"description": "x"}
    )
    assert response.status_code == 403
    assert chat.requests == []


# --- the API --------------------------------------------------------------------------------------


def test_the_api_drafts_without_storing(app, anonymous_client, api_token, chat, deliveries):
    headers = {"Authorization": f"Bearer {api_token('admin')}"}
    url = f"/api/endpoints/{deliveries.endpoint_id}/commands/draft"
    before = stored(app)
    response = anonymous_client.post(url, json={"description": "p1 issues"}, headers=headers)
    assert response.status_code == 200, page(response)
    body = response.get_json()
    assert body["command"]["name"] == "p1-issues"
    assert body["command"]["conditions"] == [{"path": "label.name", "op": "eq", "value": "p1"}]
    assert "builtin" not in body["command"]
    assert body["dry_run"]["checked"] == 3 and body["dry_run"]["matched"] == 1
    matched = [s for r in body["dry_run"]["results"] for s in r["subjects"] if s["matched"]]
    assert matched[0]["title"] == "P1: Spelling error in the README file"
    assert stored(app) == before

    # The draft saves as it is through the ordinary API.
    created = anonymous_client.post(
        f"/api/endpoints/{deliveries.endpoint_id}/commands", json=body["command"], headers=headers
    )
    assert created.status_code == 201, page(created)
    assert stored(app) == before + 1

    chat.answer = json.dumps({**P1_COMMAND, "conditions": [{"path": "x", "op": "like"}]})
    refused = anonymous_client.post(url, json={"description": "p1"}, headers=headers)
    assert refused.status_code == 422
    assert refused.get_json()["error"] == "invalid_draft"
    assert "conditions[1]: op must be one of" in refused.get_json()["detail"]

    chat.answer = "no JSON here"
    refused = anonymous_client.post(url, json={"description": "p1"}, headers=headers)
    assert refused.status_code == 422 and "not usable" in refused.get_json()["detail"]

    chat.status = 500
    failed = anonymous_client.post(url, json={"description": "p1"}, headers=headers)
    assert failed.status_code == 502 and failed.get_json()["error"] == "llm_failed"
    assert "answered 500" in failed.get_json()["detail"]

    bad = anonymous_client.post(url, json={"description": " "}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_description"
    viewer = {"Authorization": f"Bearer {api_token('viewer')}"}
    assert anonymous_client.post(url, json={"description": "p1"}, headers=viewer).status_code == 403
    assert stored(app) == before + 1


def test_the_api_without_an_llm_answers_503_naming_the_settings(
    anonymous_client, api_token, no_llm, github
):
    response = anonymous_client.post(
        f"/api/endpoints/{github.endpoint_id}/commands/draft",
        json={"description": "p1 issues"},
        headers={"Authorization": f"Bearer {api_token('admin')}"},
    )
    assert response.status_code == 503
    assert response.get_json()["error"] == "llm_not_configured"
    assert "LLM_BASE_URL" in response.get_json()["detail"]
    assert "LLM_MODEL" in response.get_json()["detail"]


def test_a_server_without_response_format_is_asked_again_without_it(
    anonymous_client, api_token, chat, github
):
    chat.refuse_response_format = True
    response = anonymous_client.post(
        f"/api/endpoints/{github.endpoint_id}/commands/draft",
        json={"description": "p1 issues"},
        headers={"Authorization": f"Bearer {api_token('admin')}"},
    )
    assert response.status_code == 200, page(response)
    assert ["response_format" in r["body"] for r in chat.requests] == [True, False]
    # No stored deliveries yet: the draft is dry-run over the shipped samples instead.
    assert response.get_json()["dry_run"]["checked"] > 0


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_no_transaction_is_open_while_the_llm_thinks(
    app, anonymous_client, api_token, chat, deliveries, database_url
):
    watcher = create_engine(database_url)

    def open_transactions() -> int:
        with watcher.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()

    chat.probe = open_transactions
    try:
        response = anonymous_client.post(
            f"/api/endpoints/{deliveries.endpoint_id}/commands/draft",
            json={"description": "p1 issues"},
            headers={"Authorization": f"Bearer {api_token('admin')}"},
        )
    finally:
        watcher.dispose()
    assert response.status_code == 200, page(response)
    assert chat.probed == [0]


@pytest.mark.browser
def test_drafting_in_the_browser_shows_progress_then_the_form(
    app,
    live_server,  # noqa: F811
    browser_page,  # noqa: F811
    make_user,
    chat,
    deliveries,
):
    page = browser_page
    chat.delay = 1.5
    make_user("admin", "browser-admin@example.com")
    base = f"/endpoints/{deliveries.endpoint_id}"
    _sign_in(page, live_server, "browser-admin@example.com", base)
    page.get_by_text("Describe a command…").click()
    page.get_by_label("What should the command do?").fill("a critical case for p1 issues")
    page.get_by_role("button", name="Draft the command").click()
    progress = page.locator("#command-draft-progress")
    progress.wait_for(state="visible")
    assert page.get_by_role("button", name="Draft the command").is_disabled()
    form = page.locator("#command-editor #command-form")
    form.wait_for()
    assert progress.is_hidden()
    assert form.get_by_label("Name").input_value() == "p1-issues"
    assert page.locator(".draft-dry-run tr.runs").count() == 1
    assert stored(app) == 0
    form.get_by_role("button", name="Save command").click()
    page.locator('#commands tr[data-command="p1-issues"]').wait_for()
    assert stored(app) == 1
