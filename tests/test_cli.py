"""``flask endpoints``, ``flask demo``."""

import json

from app.extensions import db
from app.webhooks.models import Endpoint
from app.webhooks.secrets import endpoint_secret


def test_endpoints_create_json_and_list(app, runner):
    result = runner.invoke(
        args=[
            "endpoints",
            "create",
            "--provider",
            "github",
            "--name",
            "octo/repo",
            "--secret",
            "s3cret",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["url"] == f"http://casehook.test/webhooks/github/{created['id']}"
    assert created["secret"] == "s3cret"
    with app.app_context():
        endpoint = db.session.get(Endpoint, created["id"])
        assert "s3cret" not in (endpoint.secret_encrypted or "")  # stored encrypted
        assert endpoint_secret(endpoint) == "s3cret"
    listed = runner.invoke(args=["endpoints", "list"])
    assert created["url"] in listed.output and "octo/repo" in listed.output


def test_endpoints_create_generates_a_secret(runner):
    result = runner.invoke(args=["endpoints", "create", "--provider", "github", "--name", "x"])
    assert result.exit_code == 0
    assert "Secret: " in result.output and "not shown again" in result.output


def test_endpoints_create_refuses_unknown_provider(runner):
    result = runner.invoke(args=["endpoints", "create", "--provider", "fax", "--name", "x"])
    assert result.exit_code == 2
    assert "Invalid value for '--provider': 'fax'" in result.output


# flask demo: tests/test_samples.py (the samples ship in the package).


GITHUB_VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_webhooks_verify_valid_and_invalid(runner, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"Hello, World!")
    headers = tmp_path / "headers.txt"
    headers.write_text(f"POST /hook HTTP/1.1\nX-Hub-Signature-256: {GITHUB_VECTOR}\n")
    args = ["webhooks", "verify", "--provider", "github", "--headers", str(headers),
            "--body", str(body)]  # fmt: skip
    ok = runner.invoke(args=[*args, "--secret", "It's a Secret to Everybody"])
    assert (ok.exit_code, ok.output) == (0, "valid\n")
    bad = runner.invoke(args=[*args, "--secret", "wrong"])
    assert bad.exit_code == 1
    assert bad.output.startswith("invalid: bad_signature: X-Hub-Signature-256")


def test_webhooks_verify_reads_json_headers(runner, tmp_path):
    (tmp_path / "h.json").write_text(json.dumps({"Content-Type": "application/json"}))
    (tmp_path / "b").write_bytes(b"{}")
    result = runner.invoke(args=["webhooks", "verify", "--provider", "github", "--secret", "s",
                                 "--headers", str(tmp_path / "h.json"), "--body",
                                 str(tmp_path / "b"), "--at", "1700000000"])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("invalid: missing_header: X-Hub-Signature-256")


def test_endpoints_create_generates_a_standard_webhooks_secret(runner):
    import base64

    result = runner.invoke(args=["endpoints", "create", "--provider", "standard", "--name", "x",
                                 "--json"])  # fmt: skip
    secret = json.loads(result.output)["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
