"""Mentions: ``@casehook <command> [args]`` in a comment runs the endpoint's command named so,
acknowledged in the thread at once; outsiders' runs wait for approval; bots and Casehook's
own replies never trigger. End to end through the signed ingest route, the real worker and
a local server standing in for GitHub's API; parsing per provider from real payloads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from app.agents import service as agents
from app.agents.models import AgentRun
from app.cases.models import Case
from app.extensions import db
from app.webhooks import command_store
from app.webhooks.commands import build_command
from app.webhooks.mentions import address, parse
from app.webhooks.models import Delivery, Endpoint
from app.webhooks.providers import get_provider
from app.webhooks.providers.base import Mention
from app.webhooks.views_support import ManageError, parse_settings, update_endpoint
from tests.agents_support import ECHO, write_agent
from tests.conftest import fixture_payload
from tests.replies_support import FakeAPI

FIXTURES = Path("/work/shared/fixtures")
TOKEN = "tok-0123456789abcdef"
REACTIONS = "/repos/Codertocat/Hello-World/issues/comments/492700400/reactions"
COMMENTS = "/repos/Codertocat/Hello-World/issues/1/comments"


def shared(provider: str, name: str) -> dict:
    return json.loads((FIXTURES / provider / f"{name}.json").read_bytes())


@pytest.fixture
def api():
    server = FakeAPI()
    yield server
    server.close()


@pytest.fixture
def mentioned(app, github, api, tmp_path):
    """A GitHub endpoint replying to ``api`` with an ``echo`` agent and an ``analyze``
    command (alias ``look``) run by mentions, ``summary`` the default command."""
    with app.app_context():
        endpoint = db.session.get(Endpoint, github.endpoint_id)
        update_endpoint(endpoint, settings={
            "reply": {"api_url": api.url, "token": TOKEN}, "default_command": "summary",
        })  # fmt: skip
        agents.create_agent({"name": "echo", "argv": write_agent(tmp_path, "echo", ECHO)})
        for name, aliases in (("analyze", ["look"]), ("summary", [])):
            command_store.save_command(endpoint, {
                "name": name, "aliases": aliases, "trigger": "issue_comment.created",
                "action": "run_agent", "agent": "echo", "reply": True, "priority": 1,
                "prompt_template": f"{name}: [{{{{ mention.args }}}}] by {{{{ mention.author }}}}"
                                   " in {{ mention.text }}",
            })  # fmt: skip
        db.session.commit()
    return github


def comment(body: str, association: str = "COLLABORATOR", user_type: str = "User") -> dict:
    payload = copy.deepcopy(fixture_payload("issue_comment.created"))
    payload["comment"]["body"] = body
    payload["comment"]["author_association"] = association
    payload["comment"]["user"]["type"] = user_type
    payload["sender"]["type"] = user_type
    return payload


def runs(app) -> list[AgentRun]:
    with app.app_context():
        found = list(db.session.scalars(db.select(AgentRun)))
        for run in found:
            _ = run.status, run.stdout
        db.session.expunge_all()
        return found


def outcome(app) -> str:
    with app.app_context():
        return db.session.scalars(
            db.select(Delivery.outcome).order_by(Delivery.received_at.desc())
        ).first()


def test_a_collaborators_mention_runs_the_agent_acknowledged_then_answered(
    app, mentioned, api, drain
):
    assert mentioned.send("issue_comment", comment("@casehook analyze the logs")).status_code == 202
    assert drain() == 0  # the delivery, the 👀 acknowledgement, the run, its answer
    (run,) = runs(app)
    assert run.status == "succeeded", run.stdout
    assert "analyze: [the logs] by Codertocat in @casehook analyze the logs" in run.stdout
    assert "analyze (mention by Codertocat)" in outcome(app) and "acknowledged" in outcome(app)
    # The acknowledgement came first, a reaction only, on the comment that asked; then the
    # answer in the thread.
    assert [r.path for r in api.requests] == [REACTIONS, COMMENTS]
    reaction, answer = api.requests
    assert reaction.body == {"content": "eyes"}
    assert reaction.header("Authorization") == f"Bearer {TOKEN}"
    assert "analyze: [the logs]" in answer.body["body"]
    # The answer carries the marker, so it never triggers a mention itself.
    assert answer.body["body"].endswith("<!-- casehook -->")
    with app.app_context():
        assert db.session.get(Case, run.case_id).source["number"] == 1


def test_an_outsiders_mention_waits_for_approval(app, mentioned, api, drain):
    mentioned.send("issue_comment", comment("@casehook analyze the logs", association="NONE"))
    assert drain() == 0
    (run,) = runs(app)
    assert run.status == "awaiting_approval"
    assert [r.path for r in api.requests] == [REACTIONS]  # acknowledged, not run
    with app.app_context():
        agents.approve_run(agents.get_run(run.id), "lead@example.com")
        db.session.commit()
    drain()
    assert runs(app)[0].status == "succeeded"


def test_a_bots_comment_and_casehooks_own_reply_do_nothing(app, mentioned, api, drain):
    mentioned.send("issue_comment", comment("@casehook analyze the logs", user_type="Bot"))
    mentioned.send("issue_comment", comment("analyze: @casehook analyze\n\n<!-- casehook -->"))
    # An ordinary comment does not start the agent either, though its trigger matches.
    mentioned.send("issue_comment", comment("Looks like the logs are gone"))
    assert drain() == 0
    assert runs(app) == [] and api.requests == []
    with app.app_context():
        outcomes = list(db.session.scalars(db.select(Delivery.outcome)))
    assert any("is a bot" in o for o in outcomes)
    assert any("Casehook's own reply" in o for o in outcomes)


def test_a_bare_prefix_runs_the_default_command_and_an_alias_works(app, mentioned, drain):
    mentioned.send("issue_comment", comment("Hey @CaseHook"))
    mentioned.send("issue_comment", comment("> @casehook analyze\nsure: @casehook look at db"))
    mentioned.send("issue_comment", comment("@casehook please have a look"))
    assert drain() == 0
    outputs = sorted(run.stdout.split("\n")[0] for run in runs(app))
    assert outputs == [
        "prompt: analyze: [at db] by Codertocat in > @casehook analyze",
        "prompt: summary: [] by Codertocat in Hey @CaseHook",
        "prompt: summary: [please have a look] by Codertocat in @casehook please have a look",
    ]


def test_the_allow_list_trusts_a_user_and_settings_are_checked(app, mentioned, api, drain):
    with app.app_context():
        endpoint = db.session.get(Endpoint, mentioned.endpoint_id)
        update_endpoint(endpoint, settings={
            "reply": {"api_url": api.url, "token": TOKEN}, "default_command": "summary",
            "mention_users": ["Codertocat"], "command_prefix": "/ops",
        })  # fmt: skip
    mentioned.send("issue_comment", comment("/ops analyze now", association="CONTRIBUTOR"))
    mentioned.send("issue_comment", comment("@casehook analyze now"))  # not the prefix any more
    assert drain() == 0
    (run,) = runs(app)
    assert run.status == "succeeded" and "[now]" in run.stdout
    for bad in ({"command_prefix": "two words"}, {"mention_users": "me"},
                {"default_command": 3}):  # fmt: skip
        with pytest.raises(ManageError, match=r"command_prefix|mention_users|default_command"):
            parse_settings("github", bad)


# --- parsing, per provider, from real payloads -----------------------------------------------


def test_parse_finds_the_prefix_as_a_word_of_its_own():
    assert parse("@casehook analyze the logs\nmore") == ("analyze", "the logs")
    assert parse("thanks @casehook") == ("", "")
    assert parse("@casehook: run fast") == ("run", "fast")
    assert parse("mail me at me@casehook.example") is None
    assert parse("@casehooker analyze") is None
    assert parse("> @casehook analyze") is None
    assert parse("/ops deploy", "/ops") == ("deploy", "")


def test_github_mention_from_the_fixture():
    github = get_provider("github")
    mention = github.mention("issue_comment.created", fixture_payload("issue_comment.created"))
    assert mention == Mention(text="You are totally right! I'll get this fixed right away.",
                              author="Codertocat", trusted=True, is_bot=False)  # fmt: skip
    assert github.mention("issues.opened", fixture_payload("issues.opened")) is None


def test_gitlab_note_mention_with_and_without_an_access_level():
    gitlab = get_provider("gitlab")
    issue = shared("gitlab", "issue.created")
    note = {"object_kind": "note", "event_type": "note", "user": issue["user"],
            "project": issue["project"], "issue": issue["object_attributes"],
            "object_attributes": {"id": 1244, "note": "@casehook analyze pipeline 7",
                                  "noteable_type": "Issue", "action": "create"}}  # fmt: skip
    event_type = gitlab.event_type({}, note)
    mention = gitlab.mention(event_type, note)
    assert (mention.text, mention.author, mention.trusted, mention.is_bot) == (
        "@casehook analyze pipeline 7", "ii_ivanov", False, False)  # fmt: skip
    note["user"] = {**issue["user"], "access_level": 40}
    assert gitlab.mention(event_type, note).trusted
    note["user"] = {"username": "project_3032_bot_5f2a", "access_level": 40}
    assert gitlab.mention(event_type, note).is_bot
    assert gitlab.reply_target(event_type, note)["trigger"] == {"note_id": 1244}
    assert gitlab.mention(gitlab.event_type({}, issue), issue) is None


def test_jira_comment_mention_names_the_author_from_the_fixture():
    jira = get_provider("jira")
    payload = shared("jira", "comment_created")
    mention = jira.mention("comment_created", payload)
    assert (mention.text, mention.author, mention.trusted) == ("12345", "ii_ivanov", False)
    payload["comment"]["body"] = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "@casehook analyze "},
                                          {"type": "text", "text": "the queue"}]}]}  # fmt: skip
    assert parse(jira.mention("comment_created", payload).text) == ("analyze", "the queue")
    # Allow-listed, it selects the command.
    command = build_command({"name": "analyze", "trigger": "comment_created",
                             "action": "run_agent", "agent": "echo"})  # fmt: skip
    users = {"mention_users": ["ii_ivanov"]}
    mention = jira.mention("comment_created", payload)
    found, why = address(mention, users, [command], "comment_created", payload)
    assert why is None and found.trusted and found.context["args"] == "the queue"


def test_slack_app_mention_is_addressed_by_the_apps_user_id():
    slack = get_provider("slack")
    base = shared("slack", "event_callback.reaction_added")
    payload = {**base, "event": {"type": "app_mention", "user": "U27FFLNF4",
                                 "text": "<@U299ATJ2X> look at the error rate",
                                 "ts": "1477958300.000100", "channel": "D2AQCJCQ2",
                                 "event_ts": "1477958300.000100"}}  # fmt: skip
    mention = slack.mention("app_mention", payload)
    assert mention.addressed == "look at the error rate" and mention.author == "U27FFLNF4"
    command = build_command({"name": "analyze", "aliases": ["look"], "trigger": "app_mention",
                             "action": "run_agent", "agent": "echo"})  # fmt: skip
    found, _ = address(mention, {}, [command], "app_mention", payload)
    assert found.command.name == "analyze" and not found.trusted
    assert found.context["args"] == "at the error rate"
    assert slack.reply_target("app_mention", payload)["trigger"] == {"ts": "1477958300.000100"}
    payload["event"]["bot_id"] = "B1"
    assert address(slack.mention("app_mention", payload), {}, [command], "app_mention",
                   payload)[0] is None  # fmt: skip
    assert slack.mention("reaction_added", base) is None


def test_slack_acknowledges_with_an_eyes_reaction(api):
    from app.webhooks.providers.base import ReplySettings

    slack = get_provider("slack")
    target = {"channel": "C1", "thread_ts": "1.0", "trigger": {"ts": "2.0"}}
    api.answer("reactions.add", 200, {"ok": True})
    result = slack.acknowledge(target, ReplySettings(api.url, TOKEN, {}))
    (seen,) = api.requests
    assert seen.path == "/reactions.add" and result.status_code == 200
    assert seen.body == {"channel": "C1", "timestamp": "2.0", "name": "eyes"}
    assert seen.header("Authorization") == f"Bearer {TOKEN}"


def test_the_readme_config_example_loads_and_bad_mention_settings_are_named(tmp_path):
    from app.webhooks.config_sync import ConfigError, load_config

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Mentions") :]
    example = section[
        section.index("```yaml") + 7 : section.index("```\n", section.index("```yaml"))
    ]
    (tmp_path / "casehook.yml").write_text(example)
    (declared,) = load_config(tmp_path)
    assert declared.settings["default_command"] == "summarise"
    assert [c[1]["name"] for c in declared.commands] == ["analyze", "summarise"]
    (tmp_path / "casehook.yml").write_text(example.replace("mention_users: [oncall-bot-owner]",
                                                           "mention_users: oncall"))  # fmt: skip
    with pytest.raises(ConfigError, match="mention_users must be a list"):
        load_config(tmp_path)


def test_other_commands_by_mention_only_for_members(app, mentioned, drain):
    with app.app_context():
        endpoint = db.session.get(Endpoint, mentioned.endpoint_id)
        command_store.save_command(endpoint, {"name": "done", "trigger": "issue_comment.*",
                                              "action": "close_case"})  # fmt: skip
        db.session.commit()
    mentioned.send("issue_comment", comment("@casehook done", association="NONE"))
    assert drain() == 0
    assert "done (mention by Codertocat): refused, not a project member" in outcome(app)
    mentioned.send("issue_comment", comment("@casehook done"))
    assert drain() == 0
    assert outcome(app).startswith("done (mention by Codertocat): ")
    assert runs(app) == []
