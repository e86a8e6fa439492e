"""Replies to the source: each provider module speaks its REST API as documented (to a local
server standing in for it), replies are tasks with attempts (retried, rate limits honoured),
the ``comment`` command action works from a signed delivery, and the endpoint's reply token
is kept encrypted and never shown back."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest

from app import clock
from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.replies.tasks import POST, request_reply
from app.tasks import Task, TaskAttempt, run_due
from app.webhooks import command_store
from app.webhooks.models import Endpoint
from app.webhooks.providers import PROVIDERS, get_provider
from app.webhooks.providers.base import ReplyError, ReplySettings
from tests.conftest import BOTH_DATABASES, case_event_payloads, fixture_payload
from tests.replies_support import FakeAPI

TOKEN = "tok-0123456789abcdef"


@pytest.fixture
def api():
    server = FakeAPI()
    yield server
    server.close()


def settings(api: FakeAPI, **options) -> ReplySettings:
    return ReplySettings(api_url=api.url, token=TOKEN, options=options)


# --- each provider's REST API, as documented --------------------------------------------------


def test_github_posts_an_issue_comment_and_reacts_to_the_triggering_comment(api):
    github = get_provider("github")
    target = github.reply_target("issue_comment.created", fixture_payload("issue_comment.created"))
    assert target == {"owner": "Codertocat", "repo": "Hello-World", "number": 1,
                      "url": "https://github.com/Codertocat/Hello-World/issues/1",
                      "trigger": {"comment_id": 492700400}}  # fmt: skip
    api.answer("/comments", 201, {"id": 9, "html_url": "https://github.com/x/issues/1#c-9"})
    result = github.reply(target, "On it. **Thanks**", settings(api))

    reaction, comment = api.requests
    assert reaction.path == "/repos/Codertocat/Hello-World/issues/comments/492700400/reactions"
    assert reaction.body == {"content": "eyes"}
    assert comment.path == "/repos/Codertocat/Hello-World/issues/1/comments"
    assert comment.body == {"body": "On it. **Thanks**"}
    for seen in (reaction, comment):
        assert seen.header("Authorization") == f"Bearer {TOKEN}"
        assert seen.header("Accept") == "application/vnd.github+json"
        assert seen.header("X-GitHub-Api-Version") == "2022-11-28"
    assert (result.status_code, result.url) == (201, "https://github.com/x/issues/1#c-9")


def test_github_without_a_trigger_only_comments_and_a_reaction_can_be_switched_off(api):
    github = get_provider("github")
    target = github.reply_target("issues.opened", fixture_payload("issues.opened"))
    github.reply(target, "hello", settings(api))
    github.reply({**target, "trigger": {"comment_id": 5}}, "again", settings(api, reaction="none"))
    assert [r.path for r in api.requests] == ["/repos/Codertocat/Hello-World/issues/1/comments"] * 2


def test_gitlab_adds_a_note_with_the_private_token(api):
    gitlab = get_provider("gitlab")
    sample = gitlab.sample("issue.created")
    payload = json.loads(sample.body)
    target = gitlab.reply_target(gitlab.event_type(sample.headers, payload), payload)
    assert target["kind"] == "issues" and target["iid"] == 17 and target["project_id"] == 5
    api.answer("/notes", 201, {"id": 302, "body": "hi"})
    result = gitlab.reply(target, "hi", settings(api))
    (seen,) = api.requests
    assert seen.path == "/projects/5/issues/17/notes"
    assert seen.header("PRIVATE-TOKEN") == TOKEN and seen.header("Authorization") is None
    assert seen.body == {"body": "hi"}
    assert result.url == f"{target['url']}#note_302"
    gitlab.reply({"project_id": "group/app", "kind": "merge_requests", "iid": 4}, "mr",
                 settings(api))  # fmt: skip
    assert api.requests[-1].path == "/projects/group%2Fapp/merge_requests/4/notes"


def test_jira_comments_in_plain_text_on_v2_and_in_document_format_on_v3(api):
    jira = get_provider("jira")
    target = {"key": "OPS-7", "url": "https://jira.example.com/browse/OPS-7"}
    api.answer("/comment", 201, {"id": "10042"})
    result = jira.reply(target, "first line\nsecond\n\nnew paragraph", settings(api))
    v2 = api.requests[-1]
    assert v2.path == "/rest/api/2/issue/OPS-7/comment"
    assert v2.body == {"body": "first line\nsecond\n\nnew paragraph"}
    assert v2.header("Authorization") == f"Bearer {TOKEN}"
    assert result.url == "https://jira.example.com/browse/OPS-7?focusedCommentId=10042"

    jira.reply(target, "first line\nsecond\n\nnew paragraph",
               settings(api, api_version="3", user="me@example.com"))  # fmt: skip
    v3 = api.requests[-1]
    assert v3.path == "/rest/api/3/issue/OPS-7/comment"
    basic = base64.b64encode(f"me@example.com:{TOKEN}".encode()).decode()
    assert v3.header("Authorization") == f"Basic {basic}"
    assert v3.body == {"body": {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "first line"},
                                          {"type": "hardBreak"},
                                          {"type": "text", "text": "second"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "new paragraph"}]},
    ]}}  # fmt: skip


def test_jira_replies_to_the_site_the_delivery_names_when_no_api_url_is_set(api):
    jira = get_provider("jira")
    target = {"key": "OPS-7", "site": api.url + "/jira"}
    jira.reply(target, "x", ReplySettings(api_url="", token=TOKEN, options={}))
    assert api.requests[-1].path == "/jira/rest/api/2/issue/OPS-7/comment"


def test_slack_posts_in_the_thread_and_ok_false_is_a_failure(api):
    slack = get_provider("slack")
    sample = slack.sample("event_callback.reaction_added")
    payload = json.loads(sample.body)
    target = slack.reply_target("reaction_added", payload)
    assert target == {"team": "T0JFD6M53", "channel": "D2AQCJCQ2",
                      "thread_ts": "1477958101.000004"}  # fmt: skip
    result = slack.reply(target, "Looking", settings(api))
    (seen,) = api.requests
    assert seen.path == "/chat.postMessage"
    assert seen.header("Authorization") == f"Bearer {TOKEN}"
    assert seen.header("Content-Type").startswith("application/json")
    assert seen.body == {"channel": "D2AQCJCQ2", "thread_ts": "1477958101.000004",
                         "text": "Looking"}  # fmt: skip
    assert result.status_code == 200

    api.answer("chat.postMessage", 200, {"ok": False, "error": "not_in_channel"})
    with pytest.raises(ReplyError) as refused:
        slack.reply(target, "again", settings(api))
    assert refused.value.permanent and "not_in_channel" in refused.value.detail
    api.answer("chat.postMessage", 200, {"ok": False, "error": "internal_error"})
    with pytest.raises(ReplyError) as failed:
        slack.reply(target, "again", settings(api))
    assert not failed.value.permanent
    api.answer("chat.postMessage", 429, {"ok": False, "error": "ratelimited"},
               {"Retry-After": "7"})  # fmt: skip
    with pytest.raises(ReplyError) as limited:
        slack.reply(target, "again", settings(api))
    assert limited.value.retry_after == 7 and not limited.value.permanent


def test_sentry_comments_on_the_issue(api):
    sentry = get_provider("sentry")
    payload = json.loads(sentry.sample("issue.created").body)
    target = sentry.reply_target("issue.created", payload)
    assert target["issue_id"] == "1170820242"
    sentry.reply(target, "Fixed in 1.2", settings(api))
    (seen,) = api.requests
    assert seen.path == "/issues/1170820242/comments/"
    assert seen.header("Authorization") == f"Bearer {TOKEN}"
    assert seen.body == {"text": "Fixed in 1.2"}


def test_pagerduty_adds_an_incident_note_from_a_user(api):
    pagerduty = get_provider("pagerduty")
    payload = json.loads(pagerduty.sample("incident.priority_updated").body)
    target = pagerduty.reply_target("incident.priority_updated", payload)
    assert target == {"incident_id": "PGR0VU2",
                      "url": "https://acme.pagerduty.com/incidents/PGR0VU2"}  # fmt: skip
    with pytest.raises(ReplyError, match="from") as refused:
        pagerduty.reply(target, "Mitigated", settings(api))
    assert refused.value.permanent and api.requests == []
    result = pagerduty.reply(target, "Mitigated", settings(api, **{"from": "oncall@example.com"}))
    (seen,) = api.requests
    assert seen.path == "/incidents/PGR0VU2/notes"
    assert seen.header("Authorization") == f"Token token={TOKEN}"
    assert seen.header("From") == "oncall@example.com"
    assert seen.body == {"note": {"content": "Mitigated"}}
    assert result.url == target["url"]


def test_providers_without_a_conversation_refuse_to_reply():
    for name in ("alertmanager", "standard"):
        with pytest.raises(ReplyError) as refused:
            PROVIDERS[name].reply({}, "x", ReplySettings("http://x", "t", {}))
        assert refused.value.permanent


def test_provider_knowledge_lives_on_the_provider_modules():
    from app.webhooks.views_support import KNOWN_SETTINGS, SECRET_FROM_PROVIDER, SECRET_HINTS
    from app.writing.facts import MONITORING_PROVIDERS, PROVIDER_NAMES

    for name, provider in PROVIDERS.items():
        assert provider.display_name and provider.secret_hint != "the secret", name
        assert SECRET_HINTS[name] == provider.secret_hint
    assert PROVIDER_NAMES["github"] == "GitHub" and "sentry" in MONITORING_PROVIDERS
    assert set(SECRET_FROM_PROVIDER) == {"slack", "sentry", "pagerduty"}
    assert KNOWN_SETTINGS["alertmanager"] == {"group_by": ("fingerprint", "groupKey")}
    assert PROVIDERS["standard"].check_secret("not base64!") is not None
    assert PROVIDERS["standard"].generate_secret().startswith("whsec_")


# --- replies as tasks -------------------------------------------------------------------------


def _github_case(app, github, api: FakeAPI, drain, **reply) -> int:
    """A case opened by a signed issues.opened, on an endpoint that replies to ``api``."""
    with app.app_context():
        endpoint = db.session.get(Endpoint, github.endpoint_id)
        from app.webhooks.views_support import update_endpoint

        update_endpoint(endpoint, settings={"reply": {"api_url": api.url, "token": TOKEN,
                                                      **reply}})  # fmt: skip
    assert github.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    with app.app_context():
        case = db.session.scalars(db.select(Case)).one()
        assert case.source == {
            "owner": "Codertocat",
            "repo": "Hello-World",
            "number": 1,
            "url": "https://github.com/Codertocat/Hello-World/issues/1",
        }
        return case.id


def _queue_reply(app, case_id: int, text: str = "We are on it") -> str:
    with app.app_context():
        case = db.session.get(Case, case_id)
        task = request_reply(case.endpoint, case.source, text, case=case, actor="tests")
        db.session.commit()
        return task.id


def _replied(app, case_id: int) -> list[dict]:
    return case_event_payloads(app, case_id, "case.replied")


def _attempts(app, task_id: str) -> list[tuple[str, int | None]]:
    with app.app_context():
        return [
            (a.outcome, a.status_code)
            for a in db.session.scalars(
                db.select(TaskAttempt)
                .where(TaskAttempt.task_id == task_id)
                .order_by(TaskAttempt.number)
            )
        ]


def _run_at(app, seconds: float) -> int:
    """``run_due`` with the clock ``seconds`` ahead."""
    with app.app_context(), clock.frozen_at(clock.now() + timedelta(seconds=seconds)):
        return run_due()


@BOTH_DATABASES
def test_a_failed_reply_is_retried_and_every_attempt_is_recorded(app, github, api, drain):
    case_id = _github_case(app, github, api, drain)
    api.answer("/comments", 503, {"message": "unavailable"})
    task_id = _queue_reply(app, case_id)
    with app.app_context():
        assert run_due() == 1
        task = db.session.get(Task, task_id)
        assert task.status == "queued" and "503" in task.last_error
        wait = (
            task.run_after
            - clock.now().replace(
                tzinfo=None if task.run_after.tzinfo is None else task.run_after.tzinfo
            )
        ).total_seconds()
        assert 5 < wait <= 11  # the kind's first retry delay (10 s ± 10%)
    assert _replied(app, case_id) == []  # not settled yet
    assert _run_at(app, 12) == 1
    assert _attempts(app, task_id) == [("failed", 503), ("succeeded", 201)]
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.status == "succeeded"
        last = db.session.scalars(
            db.select(TaskAttempt).where(TaskAttempt.task_id == task_id, TaskAttempt.number == 2)
        ).one()
        assert last.latency_ms is not None and '"html_url"' in last.detail  # answer excerpt
    (event,) = _replied(app, case_id)
    assert event["outcome"] == "posted" and event["text"] == "We are on it"
    assert event["url"].endswith("/repos/Codertocat/Hello-World/issues/1/comments#answer")
    assert len([r for r in api.requests if r.path.endswith("/comments")]) == 2


@BOTH_DATABASES
def test_github_rate_limits_are_waited_out_as_the_answer_says(app, github, api, drain):
    case_id = _github_case(app, github, api, drain)
    reset = int(time.time()) + 120
    api.answer("/comments", 403, {"message": "API rate limit exceeded"},
               {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})  # fmt: skip
    api.answer("/comments", 429, {"message": "secondary rate limit"}, {"Retry-After": "45"})
    task_id = _queue_reply(app, case_id)

    def wait() -> float:
        with app.app_context():
            task = db.session.get(Task, task_id)
            run_after = task.run_after.replace(tzinfo=None)
            return (run_after - clock.now().replace(tzinfo=None)).total_seconds()

    with app.app_context():
        run_due()
    assert 100 < wait() <= 121  # until x-ratelimit-reset, not the 10 s of the schedule
    assert _run_at(app, 60) == 0  # not before
    assert _run_at(app, 125) == 1
    assert 125 + 40 < wait() <= 125 + 46  # Retry-After: 45 from the second attempt
    assert _run_at(app, 125 + 50) == 1
    assert _attempts(app, task_id) == [("failed", 403), ("failed", 429), ("succeeded", 201)]
    assert _replied(app, case_id)[0]["outcome"] == "posted"


def test_a_refusal_that_cannot_change_fails_at_once_and_the_timeline_says_so(
    app, github, api, drain
):
    case_id = _github_case(app, github, api, drain)
    api.answer("/comments", 401, {"message": "Bad credentials"})
    task_id = _queue_reply(app, case_id)
    with app.app_context():
        run_due()
        assert db.session.get(Task, task_id).status == "failed"
    assert _attempts(app, task_id) == [("failed", 401)]
    (event,) = _replied(app, case_id)
    assert event["outcome"] == "failed" and event["status_code"] == 401
    assert "Bad credentials" in event["error"]


def test_an_endpoint_without_a_reply_token_fails_saying_what_to_set(
    app, github, api, client, drain
):
    case_id = _github_case(app, github, api, drain)
    with app.app_context():
        endpoint = db.session.get(Endpoint, github.endpoint_id)
        endpoint.settings = {"reply": {"api_url": api.url, "token_env": "NO_SUCH_TOKEN_VAR"}}
        db.session.commit()
    task_id = _queue_reply(app, case_id)
    with app.app_context():
        run_due()
        assert db.session.get(Task, task_id).status == "failed"
    assert "$NO_SUCH_TOKEN_VAR" in _replied(app, case_id)[0]["error"]
    assert api.requests == []


# --- the comment command action, end to end ---------------------------------------------------


@BOTH_DATABASES
def test_the_comment_action_replies_to_a_signed_delivery(app, github, api, drain):
    case_id = _github_case(app, github, api, drain)
    with app.app_context():
        endpoint = db.session.get(Endpoint, github.endpoint_id)
        command_store.save_command(endpoint, {
            "name": "ack-comments", "trigger": "issue_comment.created", "action": "comment",
            "priority": 5, "stop_after_match": False,
            "reply_template": "Thanks @{{ sender.login }}, noted: {{ comment.body[:20] }}",
        })  # fmt: skip
        db.session.commit()
    assert github.send_fixture("issue_comment.created").status_code == 202
    assert drain() == 0  # the delivery, then the reply task it asked for
    with app.app_context():
        run_due()
    body = fixture_payload("issue_comment.created")["comment"]["body"]
    paths = [r.path for r in api.requests]
    assert paths == ["/repos/Codertocat/Hello-World/issues/comments/492700400/reactions",
                     "/repos/Codertocat/Hello-World/issues/1/comments"]  # fmt: skip
    # Casehook marks its replies (an HTML comment), so that none triggers a mention.
    assert api.requests[1].body == {
        "body": f"Thanks @Codertocat, noted: {body[:20]}\n\n<!-- casehook -->"
    }
    (event,) = _replied(app, case_id)
    assert event["outcome"] == "posted" and event["origin"] == "command"
    with app.app_context():
        from app.webhooks.models import Delivery

        delivery = db.session.scalars(
            db.select(Delivery).where(Delivery.event_type == "issue_comment.created")
        ).one()
        assert "ack-comments: reply queued" in delivery.outcome
        assert (
            db.session.scalars(db.select(CaseEvent).where(CaseEvent.type == "case.replied"))
            .one()
            .actor
            == "command ack-comments"
        )


# --- reply settings: console, API, never shown back -------------------------------------------


def test_the_api_keeps_the_reply_token_encrypted_and_never_shows_it(app, client, github):
    path = f"/api/endpoints/{github.endpoint_id}"
    answer = client.patch(
        path,
        json={
            "settings": {
                "reply": {"api_url": "https://ghe.example.com/api/v3/", "token": "ghp_secret_value"}
            }
        },
    )
    assert answer.status_code == 200, answer.get_json()
    assert "ghp_secret_value" not in answer.get_data(as_text=True)
    reply = answer.get_json()["settings"]["reply"]
    assert reply == {"api_url": "https://ghe.example.com/api/v3", "token_stored": "encrypted"}
    with app.app_context():
        stored = db.session.get(Endpoint, github.endpoint_id).settings["reply"]
        assert "ghp_secret_value" not in json.dumps(stored)
        from app.webhooks.secrets import decrypt

        assert decrypt(stored["token_encrypted"]) == "ghp_secret_value"
    # Sending back what GET shows keeps the token.
    again = client.patch(path, json={"settings": answer.get_json()["settings"]})
    assert again.get_json()["settings"]["reply"]["token_stored"] == "encrypted"
    page = client.get(f"/endpoints/{github.endpoint_id}").get_data(as_text=True)
    assert "ghp_secret_value" not in page and stored["token_encrypted"] not in page
    bad = client.patch(path, json={"settings": {"reply": {"api_url": "javascript:alert(1)"}}})
    assert bad.status_code == 400 and "http(s) URL" in bad.get_json()["detail"]
    both = client.patch(path, json={"settings": {"reply": {"token": "a", "token_env": "B"}}})
    assert both.status_code == 400
    party = client.patch(path, json={"settings": {"reply": {"reaction": "party"}}})
    assert (
        party.status_code == 400 and "reply.reaction must be one of" in party.get_json()["detail"]
    )
    unknown = client.patch(path, json={"settings": {"reply": {"from": "x@example.com"}}})
    assert unknown.status_code == 400 and "unknown key 'from'" in unknown.get_json()["detail"]


def test_the_endpoint_form_sets_the_reply_settings(app, client, github):
    form = {"name": "Codertocat/Hello-World", "enabled": "1", "settings": "",
            "reply_api_url": "http://127.0.0.1:9/api", "reply_token": "from-the-form",
            "reply_token_env": "", "reply_reaction": "rocket"}  # fmt: skip
    answer = client.post(f"/endpoints/{github.endpoint_id}", data=form)
    assert answer.status_code in (200, 302)
    with app.app_context():
        reply = db.session.get(Endpoint, github.endpoint_id).settings["reply"]
        assert reply["api_url"] == "http://127.0.0.1:9/api" and reply["reaction"] == "rocket"
        assert reply["token_encrypted"]
    # Saved again with the token field empty: the stored token stays.
    client.post(f"/endpoints/{github.endpoint_id}", data={**form, "reply_token": ""})
    with app.app_context():
        assert db.session.get(Endpoint, github.endpoint_id).settings["reply"]["token_encrypted"]
    client.post(f"/endpoints/{github.endpoint_id}",
                data={**form, "reply_token": "", "reply_forget": "1"})  # fmt: skip
    with app.app_context():
        assert (
            "token_encrypted" not in db.session.get(Endpoint, github.endpoint_id).settings["reply"]
        )


# --- the case page and the API ----------------------------------------------------------------


def test_reply_to_source_from_the_case_page_and_the_api(app, github, api, client, viewer_client,
                                                        api_token, drain):  # fmt: skip
    case_id = _github_case(app, github, api, drain)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Reply to source" in page
    assert viewer_client.post(f"/cases/{case_id}/reply", data={"text": "x"}).status_code == 403
    empty = client.post(f"/cases/{case_id}/reply", data={"text": "  "},
                        headers={"HX-Request": "true"})  # fmt: skip
    assert empty.status_code == 422 and "write the reply first" in empty.get_data(as_text=True)
    queued = client.post(f"/cases/{case_id}/reply", data={"text": "From the console"},
                         headers={"HX-Request": "true"})  # fmt: skip
    assert queued.status_code == 200 and "Reply queued" in queued.get_data(as_text=True)
    token = api_token("engineer")
    answer = client.post(f"/api/cases/{case_id}/reply", json={"text": "From the API"},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 202 and answer.get_json()["task"]["kind"] == POST
    with app.app_context():
        run_due()
    assert [r.body["body"].removesuffix("\n\n<!-- casehook -->") for r in api.requests] == [
        "From the console",
        "From the API",
    ]
    outcomes = [(e["origin"], e["outcome"]) for e in _replied(app, case_id)]
    assert outcomes == [("console", "posted"), ("api", "posted")]
    panel = client.get(f"/cases/{case_id}/replies?watching=1")
    assert "case-changed" in panel.headers.get("HX-Trigger", "")
    timeline = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "view the comment" in timeline


def test_a_case_without_a_reply_token_says_how_to_get_one(app, github, client, drain):
    assert github.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    with app.app_context():
        case_id = db.session.scalars(db.select(Case.id)).one()
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "has no reply token" in page
    answer = client.post(f"/api/cases/{case_id}/reply", json={"text": "hi"})
    assert answer.status_code == 409 and answer.get_json()["error"] == "cannot_reply"


def test_a_config_file_gives_the_reply_settings_by_env_var(app, tmp_path, monkeypatch, api):
    from app.webhooks.config_sync import sync
    from app.webhooks.reply_settings import resolve

    (tmp_path / "gh.yaml").write_text(
        "endpoints:\n  - id: gh-main\n    provider: github\n    secret_env: GH_SECRET\n"
        f"    settings:\n      reply:\n        api_url: {api.url}/\n"
        "        token_env: GH_REPLY_TOKEN\n        reaction: rocket\n"
    )
    monkeypatch.setenv("GH_REPLY_TOKEN", "from-the-env")
    with app.app_context():
        sync(tmp_path)
        db.session.commit()
        endpoint = db.session.get(Endpoint, "gh-main")
        assert endpoint.settings["reply"] == {"api_url": api.url, "token_env": "GH_REPLY_TOKEN",
                                              "reaction": "rocket"}  # fmt: skip
        assert sync(tmp_path) == []  # nothing changes the second time
        reply = resolve(endpoint, get_provider("github"), {})
        assert (reply.api_url, reply.token, reply.options) == (
            api.url, "from-the-env", {"reaction": "rocket"})  # fmt: skip


def test_an_agent_run_with_reply_posts_its_output_in_the_source_thread(
    app, github, api, drain, tmp_path
):
    from app.agents import service as agents
    from app.agents.models import AgentRun
    from app.webhooks import command_store
    from tests.agents_support import ECHO, write_agent

    with app.app_context():
        agents.create_agent({"name": "echo", "argv": write_agent(tmp_path, "echo", ECHO)})
        command_store.save_command(
            db.session.get(Endpoint, github.endpoint_id),
            {"name": "analyze", "trigger": "issues.opened", "action": "run_agent",
             "agent": "echo", "prompt_template": "Look at {{ issue.title }}", "reply": True,
             "priority": 1},
        )  # fmt: skip
        db.session.commit()
    case_id = _github_case(app, github, api, drain)
    with app.app_context():
        (run,) = db.session.scalars(db.select(AgentRun)).all()
        assert run.status == "succeeded" and run.case_id == case_id
    assert drain() == 0  # the reply task the run asked for
    [comment] = [r for r in api.requests if r.path.endswith("/issues/1/comments")]
    assert "Look at" in comment.body["body"]  # the echo agent's output
    (event,) = _replied(app, case_id)
    assert event["outcome"] == "posted"
