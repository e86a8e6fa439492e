"""What each provider's case shows (``Provider.incident``), from the real payloads in
shared/fixtures (and the Standard Webhooks sample shipped in the package), and the case page
showing it above the actions, rendered safely."""

from __future__ import annotations

import json

import pytest

from app.cases.models import Case
from app.extensions import db
from app.webhooks.providers import PROVIDERS, get_provider
from app.webhooks.providers.base import Incident, Provider
from tests.conftest import FIXTURES


def _fixture(path: str) -> dict:
    return json.loads((FIXTURES / path).read_text("utf-8"))


def _fields(incident: Incident) -> dict[str, str]:
    return {field.label: field.value for field in incident.fields}


def _links(incident: Incident) -> dict[str, str | None]:
    return {field.label: field.url for field in incident.fields}


def test_the_base_class_shows_nothing():
    class Quiet(Provider):
        name = "quiet"

    assert not Quiet().incident("anything", {"body": "x"})


def test_every_provider_module_says_what_its_case_shows():
    for name, provider in PROVIDERS.items():
        assert type(provider).incident is not Provider.incident, name


def test_github_issue_body_and_facts():
    incident = get_provider("github").incident(
        "issues.opened", _fixture("github/issues.opened.json")
    )
    assert incident.body_markdown == "It looks like you accidently spelled 'commit' with two 't's."
    assert _fields(incident) == {
        "State": "open",
        "Opened by": "Codertocat",
        "Labels": "bug",
        "Repository": "Codertocat/Hello-World",
    }


def test_github_pull_request_and_ci_run():
    github = get_provider("github")
    pull = github.incident("pull_request.opened", _fixture("github/pull_request.opened.json"))
    assert _fields(pull)["State"] == "open"
    run = _fixture("github/workflow_run.completed.json")
    shown = github.incident("workflow_run.completed", run)
    assert _fields(shown)["Conclusion"] == run["workflow_run"]["conclusion"]
    assert _links(shown)["Workflow"] == run["workflow_run"]["html_url"]


def test_gitlab_issue_description_and_pipeline_jobs():
    gitlab = get_provider("gitlab")
    issue = gitlab.incident("issue.open", _fixture("gitlab/issue.created.json"))
    assert issue.body_markdown == "Test description"
    assert _fields(issue)["Labels"] == "ToDo" and _fields(issue)["Opened by"] == "ii_ivanov"
    pipeline = gitlab.incident("pipeline.failed", _fixture("gitlab/pipeline.failed.json"))
    assert _fields(pipeline)["Status"] == "failed"  # GitLab's "fail", as people say it
    assert _fields(pipeline)["Failed jobs"] == "release-image-dind"
    assert _fields(pipeline)["Ref"] == "pipeline-to-chat"


def test_jira_description_priority_and_reporter():
    incident = get_provider("jira").incident(
        "jira:issue_created", _fixture("jira/jira.issue_created.json")
    )
    assert incident.body_markdown == "Info"
    assert incident.level == "Medium"
    fields = _fields(incident)
    assert fields["Type"] == "Task" and fields["Status"] == "Open"
    assert fields["Reporter"] == "Иванов Иван Иванович"


def test_jira_cloud_description_in_atlassian_document_format():
    payload = _fixture("jira/jira.issue_created.json")
    payload["issue"]["fields"]["description"] = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Disk full"}]}],
    }
    assert get_provider("jira").incident("jira:issue_created", payload).body_markdown == "Disk full"


def test_sentry_culprit_and_level():
    incident = get_provider("sentry").incident(
        "issue.created", _fixture("sentry/issue.created.json")
    )
    assert incident.level == "error"
    assert incident.body_markdown == "`ReferenceError: blooopy is not defined`"
    fields = _fields(incident)
    assert fields["Culprit"] == "?(runner)" and fields["Level"] == "error"
    assert fields["Project"] == "front-end"


def test_pagerduty_urgency_and_service_with_its_link():
    incident = get_provider("pagerduty").incident(
        "incident.priority_updated", _fixture("pagerduty/incident.priority_updated.json")
    )
    assert incident.level == "high"
    fields, links = _fields(incident), _links(incident)
    assert fields["Urgency"] == "high" and fields["Priority"] == "P1"
    assert fields["Service"] == "API Service"
    assert links["Service"] == "https://acme.pagerduty.com/services/PF9KMXH"


def test_slack_message_text_and_reaction():
    slack = get_provider("slack")
    reaction = slack.incident(
        "reaction_added", _fixture("slack/event_callback.reaction_added.json")
    )
    assert _fields(reaction)["Reaction"] == ":grinning:"
    assert _fields(reaction)["Channel"] == "D2AQCJCQ2"
    message = _fixture("slack/event_callback.reaction_added.json")
    message["event"] = {
        "type": "app_mention",
        "user": "U1",
        "text": "*db* is down",
        "channel": "C1",
    }
    assert slack.incident("app_mention", message).body_markdown == "*db* is down"


def test_alertmanager_alert_summary_description_labels_and_runbook_link():
    alertmanager = get_provider("alertmanager")
    payload = _fixture("alertmanager/firing.json")
    [(event_type, first), _] = alertmanager.split("alert.firing", payload, {})
    first["annotations"]["runbook_url"] = "https://runbooks.example.com/instance-down"
    incident = alertmanager.incident(event_type, first)
    assert incident.body_markdown == (
        "**Instance localhost:8081 down**\n\n"
        "localhost:8081 of job node has been down for more than 1 minute."
    )
    assert incident.level == "critical"
    fields, links = _fields(incident), _links(incident)
    assert fields["instance"] == "localhost:8081" and fields["group"] == "production"
    assert links["Runbook"] == "https://runbooks.example.com/instance-down"
    first["annotations"]["runbook_url"] = "javascript:alert(1)"  # never a link
    assert "Runbook" not in _fields(alertmanager.incident(event_type, first))


def test_alertmanager_whole_group_lists_each_alert():
    incident = get_provider("alertmanager").incident(
        "alert.firing", _fixture("alertmanager/firing.json")
    )
    assert incident.body_markdown.count("\n- ") == 1  # two alert lines
    assert "localhost:8082" in incident.body_markdown
    storm = _fixture("alertmanager/firing.json")
    storm["alerts"] = storm["alerts"] * 40
    lines = get_provider("alertmanager").incident("alert.firing", storm).body_markdown.splitlines()
    assert len(lines) == 51 and lines[-1] == "- … and 30 more"


def test_standard_webhooks_sample_shows_its_data():
    provider = get_provider("standard")
    sample = provider.sample("monitor.triggered")
    incident = provider.incident("monitor.triggered", json.loads(sample.body))
    assert incident.level == "warning"
    assert _fields(incident)["Threshold ms"] == "2000"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("payload", [{}, {"event": None, "data": [], "issue": "x"}, {"alerts": 3}])
def test_hostile_payloads_show_nothing_rather_than_fail(name, payload):
    assert isinstance(get_provider(name).incident("x.y", payload), Incident)


def test_case_page_shows_the_incident_above_the_actions_rendered_safely(app, github, drain, client):
    payload = _fixture("github/issues.opened.json")
    payload["issue"]["body"] = (
        "Steps:\n\n1. open the **README**\n\n<script>alert(1)</script> [x](javascript:alert(1))"
    )
    assert github.send("issues", payload).status_code == 202
    assert drain() == 0
    with app.app_context():
        case_id = db.session.scalar(db.select(Case.id))
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    head, incident, actions = (
        page.index(f'id="{x}"') for x in ("case-head", "incident", "case-actions")
    )
    assert head < incident < actions
    shown = page[incident : page.index("</section>", incident)]
    assert "<strong>README</strong>" in shown and "<ol>" in shown  # Markdown rendered
    assert "<script>" not in shown and 'href="javascript:' not in shown  # ...safely
    assert "&lt;script&gt;" in shown  # raw HTML stays text
    assert "<dt>Opened by</dt><dd>Codertocat</dd>" in shown
    assert "issues.opened" in shown  # and which delivery said it


def test_case_page_without_a_readable_delivery_still_opens(app, github, drain, client):
    assert github.send_fixture("issues.opened").status_code == 202
    assert drain() == 0
    with app.app_context():
        from app.webhooks.models import Delivery

        case_id = db.session.scalar(db.select(Case.id))
        db.session.execute(db.update(Delivery).values(body=b"\xff not json"))
        db.session.commit()
    response = client.get(f"/cases/{case_id}")
    assert response.status_code == 200
    assert "The source said nothing more than the title." in response.get_data(as_text=True)
