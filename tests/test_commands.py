"""Commands: conditions, templates, validation, built-in/dynamic merging, dry run, processing."""

import pytest

from app.cases.models import Case
from app.extensions import db
from app.webhooks import command_store
from app.webhooks.commands import (
    Command,
    CommandError,
    Condition,
    build_command,
    matching,
    merge,
    render,
)
from app.webhooks.models import Delivery, Endpoint
from tests.conftest import fixture_payload

PAYLOAD = {
    "action": "opened",
    "issue": {"number": 3, "title": "Disk full", "labels": [{"name": "p1"}], "fields": None},
    "tags": ["db", "prod"],
}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (Condition("issue.number", "eq", 3), True),
        (Condition("issue.number", "eq", "3"), False),
        (Condition("issue.title", "ne", "Other"), True),
        (Condition("issue.missing", "ne", "x"), True),
        (Condition("action", "in", ["opened", "reopened"]), True),
        (Condition("tags", "contains", "prod"), True),
        (Condition("issue.title", "contains", "full"), True),
        (Condition("issue.number", "contains", 3), False),
        (Condition("issue.labels.0.name", "eq", "p1"), True),
        (Condition("issue.labels.5.name", "exists", None), False),
        (Condition("issue.fields", "exists", None), False),  # null counts as absent
        (Condition("issue.fields", "exists", False), True),
        (Condition("issue.title", "matches", r"^Disk"), True),
        (Condition("issue.number", "matches", r"3"), False),  # only strings match
    ],
)
def test_condition_ops(condition, holds):
    assert condition.holds(PAYLOAD) is holds


def test_trigger_wildcards_priority_and_stop_after_match():
    first = Command("a", ("issues.*",), "update_case", priority=50)
    second = Command("b", ("issues.opened",), "open_case", priority=10, stop_after_match=False)
    third = Command("c", ("*",), "ignore", priority=90)
    assert [c.name for c in matching([first, second, third], "issues.opened", {})] == ["b", "a"]
    assert [c.name for c in matching([first, third], "push", {})] == ["c"]
    off = Command("d", ("*",), "ignore", enabled=False)
    assert matching([off], "push", {}) == []


def test_explain_says_why_not():
    command = Command(
        "x", ("issues.*",), "open_case", conditions=(Condition("action", "eq", "closed"),)
    )
    assert command.explain("push", PAYLOAD) == "trigger issues.* does not match push"
    assert command.explain("issues.opened", PAYLOAD) == "condition failed: action eq 'closed'"


def test_templates_render_nested_paths_and_missing_as_empty():
    assert render("{{ issue.title }} #{{ issue.number }}", PAYLOAD, "issues.opened") == (
        "Disk full #3"
    )
    assert render("[{{ issue.fields.summary }}]", PAYLOAD, "e") == "[]"
    assert render("{{ nothing.at.all }}", PAYLOAD, "e") == ""
    assert render("{{ event_type }}", PAYLOAD, "issues.opened") == "issues.opened"


def test_templates_are_sandboxed():
    assert render("{{ ''.__class__.__mro__ }}", PAYLOAD, "e") == ""
    assert render("{{ payload.__class__ }}", PAYLOAD, "e") == ""


def test_broken_template_is_refused_with_line_and_message():
    with pytest.raises(CommandError) as refused:
        build_command({"name": "x", "trigger": "issues.*", "action": "open_case",
                       "title_template": "ok\n{{ issue.title }"})  # fmt: skip
    assert refused.value.field == "title_template"
    assert refused.value.message.startswith("line 2: ")


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"name": "has space", "trigger": "x", "action": "ignore"}, "name", "no spaces"),
        ({"name": "a", "trigger": "", "action": "ignore"}, "trigger", "at least one"),
        ({"name": "a", "trigger": "x", "action": "explode"}, "action", "must be one of"),
        ({"name": "a", "trigger": "x", "action": "comment"}, "reply_template",
         "the comment action posts this template"),
        ({"name": "a", "trigger": "x", "action": "forward"}, "subscription", "needs the id"),
        ({"name": "a", "trigger": "x", "action": "run_agent"}, "agent", "name the agent"),
        ({"name": "a", "trigger": "x", "action": "run_agent", "agent": "s",
          "prompt_template": "{{ x"}, "prompt_template", "line 1"),
        ({"name": "a", "trigger": "x", "action": "ignore", "priority": "soon"}, "priority",
         "whole number"),
        ({"name": "a", "trigger": "x", "action": "ignore", "conditions": [{"path": "a",
          "op": "like"}]}, "conditions[1]", "op must be one of"),
        ({"name": "a", "trigger": "x", "action": "ignore", "conditions": [{"path": "a",
          "op": "in", "value": "x"}]}, "conditions[1]", "list value"),
        ({"name": "a", "trigger": "x", "action": "ignore", "conditions": [{"path": "a",
          "op": "matches", "value": "("}]}, "conditions[1]", "regular expression"),
    ],
)  # fmt: skip
def test_invalid_definitions_name_the_field(data, field, says):
    with pytest.raises(CommandError) as refused:
        build_command(data)
    assert refused.value.field == field
    assert says in refused.value.message


def test_dynamic_command_overrides_builtin_of_the_same_name():
    builtin = [
        Command("gh.open", ("issues.opened",), "open_case"),
        Command("gh.x", ("*",), "ignore"),
    ]
    dynamic = [Command("gh.open", ("issues.opened",), "ignore", builtin=False)]
    merged = {c.name: c for c in merge(builtin, dynamic)}
    assert merged["gh.open"].action == "ignore" and not merged["gh.open"].builtin
    assert merged["gh.x"].builtin


@pytest.fixture
def endpoint(app, github):
    with app.app_context():
        yield db.session.get(Endpoint, github.endpoint_id)


def test_store_save_disable_builtin_and_delete(app, endpoint):
    with app.app_context():
        endpoint = db.session.merge(endpoint)
        command_store.save_command(
            endpoint, {"name": "p1", "trigger": ["issues.*"], "action": "ignore", "priority": 1}
        )
        command_store.set_enabled(endpoint, "github.open", False)
        db.session.commit()
        by_name = {c.name: c for c in command_store.commands_for(endpoint)}
        assert by_name["p1"].action == "ignore" and not by_name["p1"].builtin
        assert by_name["github.open"].enabled is False
        assert by_name["github.close"].builtin

        with pytest.raises(CommandError, match="built in"):
            command_store.delete_command(endpoint, "github.close")
        with pytest.raises(CommandError, match="already a command"):
            command_store.save_command(endpoint, {"name": "p1", "trigger": "x", "action": "ignore"})
        # Deleting the override brings the built-in back.
        command_store.delete_command(endpoint, "github.open")
        db.session.commit()
        assert {c.name: c for c in command_store.commands_for(endpoint)}["github.open"].enabled


def test_dynamic_command_with_conditions_and_templates_drives_processing(
    app, github, drain, endpoint
):
    with app.app_context():
        endpoint = db.session.merge(endpoint)
        command_store.save_command(endpoint, {
            "name": "readme-issues",
            "trigger": ["issues.opened"],
            "conditions": [{"path": "issue.title", "op": "matches", "value": "README"}],
            "action": "open_case",
            "priority": 1,
            "title_template": "Docs: {{ issue.title }} (by {{ issue.user.login }})",
            "timeline_template": "{{ sender.login }} opened #{{ issue.number }}",
        })  # fmt: skip
        command_store.save_command(
            endpoint,
            {"name": "no-prs", "trigger": "pull_request.*", "action": "ignore", "priority": 1},
        )
        db.session.commit()
    github.send_fixture("issues.opened")
    github.send_fixture("pull_request.opened")
    assert drain() == 0
    with app.app_context():
        [case] = db.session.scalars(db.select(Case)).all()
        assert case.title == "Docs: Spelling error in the README file (by Codertocat)"
        assert case.events[0].payload["summary"] == "Codertocat opened #1"
        outcomes = dict(db.session.execute(db.select(Delivery.event_type, Delivery.outcome)).all())
        assert outcomes["pull_request.opened"] == "no-prs: ignored"
        assert outcomes["issues.opened"] == "readme-issues: opened a case"


def test_dry_run_explains_every_command_and_changes_nothing(app, endpoint):
    with app.app_context():
        endpoint = db.session.merge(endpoint)
        command_store.save_command(
            endpoint,
            {
                "name": "early",
                "trigger": "issues.*",
                "action": "update_case",
                "priority": 1,
                "stop_after_match": False,
                "title_template": "T: {{ issue.title }}",
            },
        )
        db.session.commit()
        [rows] = command_store.dry_run(endpoint, "issues.opened", fixture_payload("issues.opened"))
        by_name = {row.command.name: row for row in rows}
        assert by_name["early"].runs and by_name["early"].title.startswith("T: Spelling")
        assert by_name["github.open"].runs
        assert by_name["github.open"].title.startswith("Spelling error")
        assert not by_name["github.activity"].runs
        assert "earlier command stops" in by_name["github.activity"].reason
        assert "does not match issues.opened" in by_name["github.close"].reason
        assert db.session.scalar(db.select(db.func.count(Case.id))) == 0
