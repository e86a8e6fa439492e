"""Agents through the API, the CLI, the config files, the console and a command action."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app import clock
from app.accounts.models import ApiToken
from app.agents import service
from app.agents.models import AgentRun
from app.cases.models import Case
from app.extensions import db
from app.tasks import run_due
from app.webhooks import command_store
from app.webhooks.config_sync import ConfigError, sync
from app.webhooks.models import Endpoint
from tests.agents_support import ECHO, run_state, write_agent
from tests.conftest import add_case, fixture_payload


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _case(app) -> int:
    with app.app_context():
        case = add_case("Payments API 500s", "open", clock.now())
        db.session.commit()
        return case.id


def test_agents_crud_over_the_api(app, api_token):
    client, admin, viewer = app.test_client(), _auth(api_token("admin")), _auth(api_token())
    body = {"name": "summarise", "argv": ["/bin/echo", "hi"], "max_concurrent": 2,
            "timeout_seconds": 30, "env": ["LANG"], "secrets": {"KEY": "SUMMARY_KEY"}}  # fmt: skip
    assert client.post("/api/agents", json=body, headers=viewer).status_code == 403
    created = client.post("/api/agents", json=body, headers=admin)
    assert created.status_code == 201
    assert created.json["max_concurrent"] == 2 and created.json["argv"] == ["/bin/echo", "hi"]
    again = client.post("/api/agents", json=body, headers=admin)
    assert again.status_code == 400 and again.json["field"] == "name"
    listed = client.get("/api/agents", headers=viewer).json["agents"]
    assert [a["name"] for a in listed] == ["summarise"]
    patched = client.patch("/api/agents/summarise", json={"retries": 2}, headers=admin)
    assert patched.json["retries"] == 2 and patched.json["timeout_seconds"] == 30
    assert client.get("/api/agents/summarise", headers=viewer).json["retries"] == 2
    assert client.delete("/api/agents/summarise", headers=admin).status_code == 204
    assert client.get("/api/agents/summarise", headers=viewer).status_code == 404


def test_an_unknown_agent_is_a_404_that_names_it_in_the_api_and_the_console(app, api_token, client):
    answer = app.test_client().get("/api/agents/nobody", headers=_auth(api_token()))
    assert answer.status_code == 404
    assert answer.json == {"error": "not_found", "detail": "there is no agent 'nobody'"}
    page = client.get("/agents/nobody")
    assert page.status_code == 404 and "there is no agent &#39;nobody&#39;" in page.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a b", "argv": ["x"]}, "name"),
        ({"name": "a", "argv": "echo hi; rm -rf /"}, "argv"),
        ({"name": "a", "argv": []}, "argv"),
        ({"name": "a", "argv": ["x"], "max_concurrent": 0}, "max_concurrent"),
        ({"name": "a", "argv": ["x"], "timeout_seconds": True}, "timeout_seconds"),
        ({"name": "a", "argv": ["x"], "env": ["NOT A NAME"]}, "env"),
        ({"name": "a", "argv": ["x"], "secrets": {"K": "the value itself"}}, "secrets"),
        ({"name": "a", "argv": ["x"], "shell": True}, "shell"),
    ],
)
def test_invalid_agents_are_refused_naming_the_field(app, api_token, body, field):
    response = app.test_client().post("/api/agents", json=body, headers=_auth(api_token("admin")))
    assert response.status_code == 400
    assert response.json["field"] == field


def test_run_an_agent_on_a_case_over_the_api(app, api_token, tmp_path):
    with app.app_context():
        service.create_agent({"name": "echo", "argv": write_agent(tmp_path, "echo", ECHO)})
        db.session.commit()
    case_id = _case(app)
    client, engineer = app.test_client(), _auth(api_token("engineer"))
    url = f"/api/cases/{case_id}/agent-runs"
    assert client.post(url, json={"agent": "nope"}, headers=engineer).status_code == 404
    assert client.post(url, json={"agent": "echo"}, headers=_auth(api_token())).status_code == 403
    created = client.post(url, json={"agent": "echo", "prompt": "look at it"}, headers=engineer)
    assert created.status_code == 202 and created.json["status"] == "queued"
    with app.app_context():
        run_due()
    shown = client.get(f"/api/agent-runs/{created.json['id']}", headers=engineer).json
    assert shown["status"] == "succeeded" and "prompt: look at it" in shown["stdout"]
    for key in ("id", "agent", "case_id", "status", "exit_code", "stdout", "stderr",
                "attempts", "queued_at", "started_at", "finished_at"):  # fmt: skip
        assert key in shown
    listed = client.get(f"/api/agent-runs?case_id={case_id}&status=succeeded", headers=engineer)
    assert [r["id"] for r in listed.json["agent_runs"]] == [created.json["id"]]
    none = client.get("/api/agent-runs?status=running", headers=engineer).json["agent_runs"]
    assert none == []


def test_the_agent_gets_a_short_lived_token_scoped_to_its_case(app, tmp_path, api_token):
    app.config["AGENT_API_URL"] = "http://casehook.test/"
    source = (
        "import os; print(os.environ['CASEHOOK_API_URL']); print(os.environ['CASEHOOK_API_TOKEN'])"
    )
    argv = write_agent(tmp_path, "token", source)
    with app.app_context():
        service.create_agent({"name": "token", "argv": argv, "timeout_seconds": 60})
        db.session.commit()
    case_id, other_id = _case(app), _case(app)
    client = app.test_client()
    run = client.post(f"/api/cases/{case_id}/agent-runs", json={"agent": "token"},
                      headers=_auth(api_token("engineer"))).json  # fmt: skip
    with app.app_context():
        run_due()
        url, token = run_state(run["id"])["stdout"].split()
    assert url == "http://casehook.test"
    assert client.get(f"/api/cases/{case_id}", headers=_auth(token)).status_code == 200
    refused = client.get(f"/api/cases/{other_id}", headers=_auth(token))
    assert (
        refused.status_code == 401 and f"only be used for case {case_id}" in refused.json["detail"]
    )
    assert client.get("/api/agents", headers=_auth(token)).status_code == 401
    with app.app_context():
        stored = db.session.scalar(db.select(ApiToken).where(ApiToken.case_id == case_id))
        assert 60 <= (stored.expires_at - stored.created_at).total_seconds() <= 121
        stored.expires_at = clock.now() - timedelta(seconds=1)
        db.session.commit()
    expired = client.get(f"/api/cases/{case_id}", headers=_auth(token))
    assert expired.status_code == 401 and "expired" in expired.json["detail"]


def test_the_run_agent_action_from_a_signed_delivery(app, github, drain, tmp_path):
    with app.app_context():
        service.create_agent({"name": "echo", "argv": write_agent(tmp_path, "echo", ECHO)})
        command_store.save_command(
            db.session.get(Endpoint, github.endpoint_id),
            {"name": "analyze", "trigger": "issues.opened", "action": "run_agent",
             "agent": "echo", "prompt_template": "Analyze: {{ issue.title }}", "priority": 1},
        )  # fmt: skip
        db.session.commit()
    payload = fixture_payload("issues.opened")
    payload["issue"]["title"] = "Checkout fails; $(rm -rf ~)"
    assert github.send("issues", payload).status_code == 202
    drain()  # processes the delivery, then the agent's task
    drain()
    with app.app_context():
        (run,) = db.session.scalars(db.select(AgentRun)).all()
        state = run_state(run.id)
        case = db.session.get(Case, run.case_id)
        types = [e.type for e in case.events]
    assert state["status"] == "succeeded", state
    assert "prompt: Analyze: Checkout fails; $(rm -rf ~)" in state["stdout"]
    assert "agent.run_requested" in types and "agent.run_finished" in types


def test_a_run_agent_command_with_requires_approval_waits(app, github, drain, tmp_path):
    with app.app_context():
        service.create_agent({"name": "echo", "argv": write_agent(tmp_path, "echo", ECHO)})
        command_store.save_command(
            db.session.get(Endpoint, github.endpoint_id),
            {"name": "analyze", "trigger": "issues.opened", "action": "run_agent",
             "agent": "echo", "requires_approval": True, "reply": True, "priority": 1},
        )  # fmt: skip
        db.session.commit()
    assert github.send_fixture("issues.opened").status_code == 202
    drain()
    with app.app_context():
        (run,) = db.session.scalars(db.select(AgentRun)).all()
        assert run.status == "awaiting_approval" and run.task_id is None and run.reply
        service.approve_run(run, "engineer@example.com")
        db.session.commit()
        run_id = run.id
    drain()
    with app.app_context():
        # No replies.post kind registered here: the reply is skipped, the run succeeds.
        assert run_state(run_id)["status"] == "succeeded"


def test_a_run_agent_command_naming_an_unknown_agent_says_so(app, github, drain):
    with app.app_context():
        command_store.save_command(
            db.session.get(Endpoint, github.endpoint_id),
            {"name": "analyze", "trigger": "issues.opened", "action": "run_agent",
             "agent": "missing", "priority": 1},
        )  # fmt: skip
        db.session.commit()
    github.send_fixture("issues.opened")
    drain()
    with app.app_context():
        from app.webhooks.models import Delivery

        (delivery,) = db.session.scalars(db.select(Delivery)).all()
        assert "no agent named 'missing'" in delivery.outcome
        assert db.session.scalars(db.select(AgentRun)).all() == []


AGENTS_YAML = """\
agents:
  - name: summarise
    argv: ["/opt/agents/summarise.sh", "--short"]
    max_concurrent: 2
    timeout_seconds: 120
    secrets: {API_KEY: SUMMARISER_API_KEY}
"""


def test_agents_in_config_files_sync(app, tmp_path):
    (tmp_path / "agents.yaml").write_text(AGENTS_YAML)
    with app.app_context():
        assert sync(tmp_path) == ["create agent summarise"]
        assert sync(tmp_path) == []
        agent = service.get_agent("summarise")
        assert agent.argv == ["/opt/agents/summarise.sh", "--short"] and agent.source == "config"
        (tmp_path / "agents.yaml").write_text(AGENTS_YAML.replace("max_concurrent: 2", ""))
        assert sync(tmp_path) == ["update agent summarise: max_concurrent"]
        (tmp_path / "agents.yaml").write_text("agents: []\n")
        assert sync(tmp_path) == ["delete agent summarise"]
        service.create_agent({"name": "summarise", "argv": ["x"]})
        db.session.commit()
        (tmp_path / "agents.yaml").write_text(AGENTS_YAML)
        with pytest.raises(ConfigError, match="made in the console"):
            sync(tmp_path)
        (tmp_path / "agents.yaml").write_text("agents:\n  - name: bad\n    argv: echo hi\n")
        with pytest.raises(ConfigError, match="argv"):
            sync(tmp_path)


def test_the_cli_creates_and_lists_agents(app, runner):
    created = runner.invoke(args=["agents", "create", "--name", "summarise", "--argv",
                                  '["/bin/echo", "--flag"]', "--max-concurrent", "3",
                                  "--timeout", "45", "--json"])  # fmt: skip
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["max_concurrent"] == 3
    listed = runner.invoke(args=["agents", "list"])
    assert "summarise" in listed.output and '["/bin/echo", "--flag"]' in listed.output
    bad = runner.invoke(args=["agents", "create", "--name", "x", "--argv", "echo hi"])
    assert bad.exit_code != 0 and "not JSON" in bad.output


def test_the_case_page_runs_an_agent_and_admins_manage_agents(app, client, tmp_path):
    created = client.post("/agents", data={"name": "echo", "argv": json.dumps(
        write_agent(tmp_path, "echo", ECHO)), "max_concurrent": "1", "timeout_seconds": "30",
        "max_output_bytes": "5000", "retries": "0"})  # fmt: skip
    assert created.status_code == 303
    assert "echo" in client.get("/agents").get_data(as_text=True)
    case_id = _case(app)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Run agent…" in page and 'id="agents-panel"' in page
    form = {"agent": "echo", "prompt": "from the page"}
    panel = client.post(f"/cases/{case_id}/agent-runs", data=form, headers={"HX-Request": "true"})
    assert panel.status_code == 200 and "queued" in panel.get_data(as_text=True)
    assert "every 1000ms" in panel.get_data(as_text=True)  # polls while it runs
    with app.app_context():
        run_due()
    panel = client.get(f"/cases/{case_id}/agent-runs", headers={"HX-Request": "true"})
    text = panel.get_data(as_text=True)
    assert "succeeded" in text and "prompt: from the page" in text and "every" not in text
    refused = client.post(f"/cases/{case_id}/agent-runs", data={"agent": "nope"},
                          headers={"HX-Request": "true"})  # fmt: skip
    assert refused.status_code == 422 and "pick an agent" in refused.get_data(as_text=True)


def test_viewers_cannot_run_agents_from_the_console(app, viewer_client):
    case_id = _case(app)
    response = viewer_client.post(f"/cases/{case_id}/agent-runs", data={"agent": "x"})
    assert response.status_code == 403
