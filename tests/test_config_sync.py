"""Config as code: YAML files in a folder synced into endpoints and commands."""

import textwrap

import pytest

from app.extensions import db
from app.webhooks import command_store
from app.webhooks.config_sync import ConfigError, load_config, sync
from app.webhooks.models import CommandRecord, Delivery, Endpoint
from app.webhooks.secrets import endpoint_secret

GITHUB_YAML = """\
endpoints:
  - id: gh-main
    provider: github
    name: my-org/my-repo
    secret_env: CASEHOOK_TEST_GH_SECRET
    commands:
      - name: p1-issues
        trigger: issues.labeled
        conditions: [{path: label.name, op: eq, value: p1}]
        action: open_case
        priority: 5
        title_template: "P1: {{ issue.title }}"
      - name: github.activity
        trigger: "issues.*"
        action: update_case
        enabled: false
"""


def write(folder, name, text):
    (folder / name).write_text(textwrap.dedent(text))


def test_sync_creates_then_is_idempotent(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CASEHOOK_TEST_GH_SECRET", "from-env")
    write(tmp_path, "github.yaml", GITHUB_YAML)
    with app.app_context():
        assert sync(tmp_path) == [
            "create endpoint gh-main (github, github.yaml)",
            "create command gh-main/p1-issues",
            "create command gh-main/github.activity",
        ]
        endpoint = db.session.get(Endpoint, "gh-main")
        assert (endpoint.source, endpoint.config_file) == ("config", "github.yaml")
        assert endpoint_secret(endpoint) == "from-env"
        commands = {c.name: c for c in command_store.commands_for(endpoint)}
        assert commands["p1-issues"].title_template == "P1: {{ issue.title }}"
        assert commands["github.activity"].enabled is False  # a built-in switched off
        assert sync(tmp_path) == []


def test_sync_updates_and_deletes_what_files_no_longer_declare(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CASEHOOK_TEST_GH_SECRET", "x")
    write(tmp_path, "github.yaml", GITHUB_YAML)
    with app.app_context():
        sync(tmp_path)
        changed = GITHUB_YAML.replace("my-org/my-repo", "renamed").replace(
            "priority: 5", "priority: 7"
        )
        changed = changed[: changed.index("      - name: github.activity")]
        write(tmp_path, "github.yaml", changed)
        assert sync(tmp_path) == [
            "update endpoint gh-main: name",
            "update command gh-main/p1-issues",
            "delete command gh-main/github.activity",
        ]
        (tmp_path / "github.yaml").unlink()
        assert sync(tmp_path) == ["delete endpoint gh-main"]
        assert db.session.get(Endpoint, "gh-main") is None
        assert db.session.scalar(db.select(db.func.count(CommandRecord.id))) == 0


def test_removed_endpoint_with_deliveries_is_disabled_not_deleted(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CASEHOOK_TEST_GH_SECRET", "x")
    write(tmp_path, "github.yaml", GITHUB_YAML)
    with app.app_context():
        sync(tmp_path)
        db.session.add(Delivery(endpoint_id="gh-main", delivery_id="d1", body=b"{}"))
        db.session.commit()
        (tmp_path / "github.yaml").unlink()
        [change] = sync(tmp_path)
        assert change.startswith("disable endpoint gh-main")
        assert db.session.get(Endpoint, "gh-main").enabled is False
        assert sync(tmp_path) == []


def test_dry_run_changes_nothing(app, tmp_path, monkeypatch):
    write(tmp_path, "github.yaml", GITHUB_YAML)
    with app.app_context():
        assert len(sync(tmp_path, dry_run=True)) == 3
        assert db.session.get(Endpoint, "gh-main") is None


def test_console_endpoints_are_left_alone(app, tmp_path, github):
    write(tmp_path, "empty.yaml", "endpoints: []\n")
    with app.app_context():
        assert sync(tmp_path) == []
        assert db.session.get(Endpoint, github.endpoint_id) is not None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("endpoints:\n  - id: x\n", "github.yaml line 2: id must be 3-26"),
        ("endpoints:\n  - id: gh-main\n    provider: fax\n", "line 2: provider must be one of"),
        ("endpoints:\n  - id: gh-main\n    provider: github\n    secret: hunter2\n",
         "unknown keys secret"),
        ("endpoints:\n  - id: gh-main\n    provider: github\n    secret_env: S\n"
         "    commands:\n      - name: x\n        trigger: a\n        action: comment\n",
         "github.yaml line 6: command x: reply_template: the comment action posts"),
        ("endpoints:\n  - id: gh-main\n    provider: github\n    secret_env: S\n"
         "    settings:\n      reply: {token: ghp_x}\n",
         "github.yaml line 2: settings.reply.token: tokens are never written in config files"),
        ("endpoints:\n  - id: gh-main\n    provider: github\n    secret_env: S\n"
         "    settings:\n      reply: {api_url: 'ftp://x'}\n",
         "settings.reply.api_url must be an http(s) URL"),
        ("endpoints:\n  - id: gh-main\n    provider: github\n    secret_env: S\n"
         "    commands:\n      - name: x\n        trigger: a\n        action: ignore\n"
         "        title_template: '{{ a }'\n",
         "github.yaml line 6: command x: title_template: line 1:"),
        ("endpoints: [\n", "github.yaml line 2: not valid YAML"),
    ],
)  # fmt: skip
def test_invalid_files_name_file_and_line(tmp_path, text, says):
    write(tmp_path, "github.yaml", text)
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path)
    assert any(says in problem for problem in refused.value.problems), refused.value.problems


def test_duplicate_ids_across_files(tmp_path):
    write(tmp_path, "a.yaml", GITHUB_YAML)
    write(tmp_path, "b.yml", GITHUB_YAML)
    with pytest.raises(ConfigError, match=r"already declared in a\.yaml line 2"):
        load_config(tmp_path)


def test_cli_sync_and_dry_run(app, runner, tmp_path, monkeypatch):
    write(tmp_path, "github.yaml", GITHUB_YAML)
    dry = runner.invoke(args=["config", "sync", "--dir", str(tmp_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would create endpoint gh-main" in dry.output and "nothing written" in dry.output
    monkeypatch.setenv("CASEHOOK_CONFIG_DIR", str(tmp_path))
    assert "3 change(s)" in runner.invoke(args=["config", "sync"]).output
    assert "Up to date" in runner.invoke(args=["config", "sync"]).output
    write(tmp_path, "bad.yaml", "endpoints:\n  - id: '!'\n")
    bad = runner.invoke(args=["config", "sync"])
    assert bad.exit_code == 1 and "bad.yaml line 2: id must be" in bad.output
