"""Login throttling (per address, per account, failures only, Redis or memory) and the
console's security headers (absent from /webhooks/ and /api/)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from app import create_app
from app.security import CONTENT_SECURITY_POLICY
from tests.conftest import TEST_PASSWORD

ROOT = Path(__file__).resolve().parent.parent
WRONG = "not the password"


def _login(app, email: str, password: str, ip: str = "10.0.0.1"):
    """A sign-in from a fresh browser at ``ip``."""
    return app.test_client().post(
        "/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_the_eleventh_failed_sign_in_from_one_address_gets_429_with_retry_after(app, make_user):
    make_user("viewer", "someone@example.com")
    for n in range(10):  # ten accounts, so that no account reaches its own limit
        assert _login(app, f"nobody{n}@example.com", WRONG).status_code == 401

    refused = _login(app, "nobody10@example.com", WRONG)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    page = refused.get_data(as_text=True)
    assert re.search(r"Too many failed password attempts\. Wait \d+ seconds?", page)
    assert 'name="email"' in page  # the sign-in form, not an error page
    # The address is refused before any password check, even with the right password ...
    assert _login(app, "someone@example.com", TEST_PASSWORD).status_code == 429
    # ... while the same account signs in from another address.
    assert _login(app, "someone@example.com", TEST_PASSWORD, ip="10.0.0.2").status_code == 302


def test_an_account_is_throttled_after_five_failures_from_any_addresses(app, make_user):
    make_user("viewer", "target@example.com")
    make_user("viewer", "colleague@example.com")
    for n in range(5):
        assert _login(app, "target@example.com", WRONG, ip=f"10.0.1.{n}").status_code == 401
    # Same account, any address, any spelling of the email: refused.
    assert _login(app, " Target@Example.com", TEST_PASSWORD, ip="10.0.2.1").status_code == 429
    # Another account from an address that took part: fine.
    assert _login(app, "colleague@example.com", TEST_PASSWORD, ip="10.0.1.4").status_code == 302


def test_successful_sign_ins_do_not_count(app, make_user):
    make_user("viewer", "busy@example.com")
    for _ in range(12):  # more than either limit, all from one address
        assert _login(app, "busy@example.com", TEST_PASSWORD).status_code == 302


def test_wrong_current_passwords_on_the_account_page_count_for_the_account(app, make_user):
    from tests.conftest import signed_in_client

    user_id = make_user("viewer", "changer@example.com")
    client = signed_in_client(app, user_id)
    form = {"current": WRONG, "new": "a brand new passphrase", "confirm": "a brand new passphrase"}
    for n in range(5):
        response = client.post("/account", data=form, environ_base={"REMOTE_ADDR": f"10.1.0.{n}"})
        assert response.status_code == 422
        assert "the current password is not right" in response.get_data(as_text=True)
    refused = client.post("/account", data=form, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "Too many failed password attempts" in refused.get_data(as_text=True)
    # The account's limit is shared with the sign-in form.
    assert _login(app, "changer@example.com", TEST_PASSWORD, ip="10.1.2.1").status_code == 429


def test_limits_come_from_the_configuration(app, make_user):
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "2/minute"
    make_user("viewer", "strict@example.com")
    for _ in range(2):
        assert _login(app, "strict@example.com", WRONG).status_code == 401
    assert _login(app, "strict@example.com", WRONG).status_code == 429


def test_a_bad_limit_setting_stops_the_start(app):
    with pytest.raises(ValueError, match="LOGIN_LIMIT_PER_IP"):
        create_app({**app.config, "LOGIN_LIMIT_PER_IP": "lots"})


def test_without_redis_sign_in_works_and_each_process_counts_in_memory(app, make_user, caplog):
    make_user("viewer", "offline@example.com")
    # The same database, Redis on a port where nothing listens.
    config = {k: v for k, v in app.config.items() if not k.startswith("RATELIMIT_")}
    dead = create_app({**config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    # The app fixture's migration (Alembic's fileConfig) disabled the loggers that existed.
    logging.getLogger("flask-limiter").disabled = False
    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        assert _login(dead, "offline@example.com", TEST_PASSWORD).status_code == 302
        assert "falling back to in-memory storage" in caplog.text
        for _ in range(5):
            assert _login(dead, "offline@example.com", WRONG).status_code == 401
        assert _login(dead, "offline@example.com", TEST_PASSWORD).status_code == 429


# --------------------------------------------------------------------------- headers

CONSOLE_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options")


def test_console_pages_carry_the_security_headers(client, anonymous_client):
    for response in (
        client.get("/cases"),
        client.get("/account"),
        client.get("/cases/999999"),  # an error page is a page too
        client.get("/static/htmx.min.js"),
        anonymous_client.get("/login"),
    ):
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
    csp = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_webhooks_and_the_api_have_no_console_headers(app, github, client, api_token):
    answers = [
        github.send_fixture("issues.opened"),  # 202
        github.send("issues", b"{}", **{"X-Hub-Signature-256": "sha256=00"}),  # 401
        client.post("/webhooks/github/no-such-endpoint", data=b"{}"),  # 404
        client.get("/api/cases", headers={"Authorization": f"Bearer {api_token()}"}),
        app.test_client().get("/api/cases"),  # 401
    ]
    assert [r.status_code for r in answers] == [202, 401, 404, 200, 401]
    for response in answers:
        for name in (*CONSOLE_HEADERS, "Referrer-Policy"):
            assert name not in response.headers, (response.request.path, name)


def test_templates_have_nothing_the_csp_would_block():
    """No inline <script>, on*= or hx-on handler, style= attribute, <style> element, or
    htmx trigger filter (``event[expression]``, evaluated as JavaScript) in any template."""
    patterns = {
        "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
        "event handler": re.compile(r"\son[a-z]+\s*=", re.I),
        "hx-on": re.compile(r"\b(data-)?hx-on", re.I),
        "style attribute": re.compile(r"\sstyle\s*=", re.I),
        "style element": re.compile(r"<style", re.I),
        "trigger filter": re.compile(r'hx-trigger="[^"]*\['),
        "javascript: URL": re.compile(r"javascript:", re.I),
    }
    offences = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        text = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)  # Jinja comments
        # "from:input[name=q]" in a trigger is a CSS selector, not a filter.
        text = re.sub(r"\b(from|target):[^\s,\"]+", "", text)
        offences += [
            f"{template.relative_to(ROOT)}: {name}"
            for name, pattern in patterns.items()
            if pattern.search(text)
        ]
    assert offences == []
