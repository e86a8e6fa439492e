"""Accounts (SPEC C10): login, roles, API tokens, CSRF, and ``flask users`` / ``flask tokens``."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from flask import jsonify

from app import clock
from app.accounts import service
from app.accounts.auth import require_role
from app.accounts.models import ApiToken, User
from app.extensions import db
from tests.conftest import TEST_PASSWORD, signed_in_client

CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def probes(app):
    """Views that need each role, a JSON write, and one with no decorator at all."""

    def ok():
        return jsonify(ok=True)

    app.add_url_rule(
        "/api/probe/engineer", "probe_engineer", require_role("engineer")(ok), methods=["GET"]
    )
    app.add_url_rule(
        "/api/probe/write", "probe_write", require_role("viewer")(ok), methods=["POST"]
    )
    app.add_url_rule("/probe/admin", "probe_admin", require_role("admin")(ok))
    app.add_url_rule("/probe/undecorated", "probe_undecorated", ok)
    app.add_url_rule("/probe/form", "probe_form", require_role("viewer")(ok), methods=["POST"])


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def login(client, email: str, password: str = TEST_PASSWORD, **extra):
    return client.post("/login", data={"email": email, "password": password, **extra})


# --- login and logout -------------------------------------------------------------------


def test_login_page_says_how_to_create_the_first_admin(anonymous_client):
    page = anonymous_client.get("/login").get_data(as_text=True)
    assert "No accounts yet" in page and "flask users bootstrap" in page


def test_login_success_redirects_to_next_and_records_the_sign_in(app, anonymous_client, make_user):
    user_id = make_user("engineer", "eng@example.com")
    page = anonymous_client.get("/login").get_data(as_text=True)
    assert "No accounts yet" not in page and 'name="password"' in page
    response = login(anonymous_client, "ENG@example.com ", next="/cases?status=open")
    assert response.status_code == 302
    assert response.headers["Location"] == "/cases?status=open"
    page = anonymous_client.get("/cases").get_data(as_text=True)
    assert "eng@example.com" in page and 'class="badge role role-engineer"' in page
    assert "Sign out" in page and "/admin/users" not in page  # no Users link for engineers
    with app.app_context():
        assert db.session.get(User, user_id).last_login_at is not None
    # Signed in, /login sends you on.
    assert anonymous_client.get("/login").headers["Location"] == "/cases"


@pytest.mark.parametrize(
    "email, password",
    [("eng@example.com", "wrong password"), ("nobody@example.com", TEST_PASSWORD)],
)
def test_bad_credentials_do_not_say_which_part_was_wrong(
    anonymous_client, make_user, email, password
):
    make_user("engineer", "eng@example.com")
    response = login(anonymous_client, email, password)
    assert response.status_code == 401
    assert "That email and password do not match an active account." in response.get_data(
        as_text=True
    )
    assert anonymous_client.get("/cases").status_code == 302  # still signed out


def test_deactivated_user_cannot_sign_in(anonymous_client, make_user):
    make_user("admin", "gone@example.com", active=False)
    assert login(anonymous_client, "gone@example.com").status_code == 401


def test_empty_login_form_names_the_missing_fields(anonymous_client):
    response = anonymous_client.post("/login", data={})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Enter your email." in page and "Enter your password." in page


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_login_never_redirects_off_site(anonymous_client, make_user, next_url):
    make_user("viewer", "v@example.com")
    response = login(anonymous_client, "v@example.com", next=next_url)
    assert response.headers["Location"] == "/cases"


def test_logout_signs_out(client):
    assert client.get("/cases").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "You are signed out." in client.get("/login").get_data(as_text=True)
    assert client.get("/cases").status_code == 302


def test_remember_me_sets_a_secure_settings_cookie(app, anonymous_client, make_user):
    make_user("viewer", "v@example.com")
    response = login(anonymous_client, "v@example.com", remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("remember_token="))
    session = next(c for c in cookies if c.startswith("session="))
    for cookie in (remember, session):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secure_cookies_when_configured(monkeypatch, tmp_path):
    from app.config import from_environment

    monkeypatch.setenv("CASEHOOK_SECURE_COOKIES", "1")
    config = from_environment(tmp_path, {"SECRET_KEY": "x"})
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    monkeypatch.setenv("CASEHOOK_SECURE_COOKIES", "0")
    config = from_environment(tmp_path, {"SECRET_KEY": "x"})
    assert not config["SESSION_COOKIE_SECURE"] and not config["REMEMBER_COOKIE_SECURE"]


# --- who may see what -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/cases", "/cases/1", "/endpoints", "/deliveries/x", "/account/tokens"]
)
def test_console_redirects_to_login_with_next(anonymous_client, path):
    response = anonymous_client.get(path + "?a=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert anonymous_client.get(response.headers["Location"]).status_code == 200


def test_htmx_request_without_a_session_sends_the_whole_page_to_login(anonymous_client):
    response = anonymous_client.get(
        "/cases?since=x",
        headers={"HX-Request": "true", "HX-Current-URL": "http://casehook.test/cases?q=db"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/cases?q%3Ddb"


def test_api_without_credentials_is_401_json_saying_how(anonymous_client):
    response = anonymous_client.get("/api/cases")
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert "Authorization: Bearer <token>" in response.json["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_public_routes_stay_public(anonymous_client, github):
    assert anonymous_client.get("/healthz").status_code == 200
    assert anonymous_client.get("/readyz").status_code == 200
    assert anonymous_client.get("/static/casehook.css").status_code == 200
    github.client = anonymous_client  # the webhook route authenticates by signature only
    assert github.send_fixture("issues.opened").status_code == 202
    unsigned = anonymous_client.post(github.path, data=b"{}", headers={"X-GitHub-Event": "x"})
    assert unsigned.status_code == 401


def test_a_view_without_a_decorator_still_needs_a_viewer(probes, anonymous_client, viewer_client):
    assert anonymous_client.get("/probe/undecorated").status_code == 302
    assert viewer_client.get("/probe/undecorated").json == {"ok": True}


def test_viewer_reads_but_cannot_manage_users(probes, viewer_client):
    for path in ("/cases", "/endpoints", "/account", "/account/tokens", "/api/cases"):
        assert viewer_client.get(path).status_code == 200, path
    refused = viewer_client.get("/admin/users")
    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    assert "this needs the admin role" in page
    assert "viewer@example.com with the viewer role" in page
    assert "<html" in page  # a readable page, not JSON
    assert viewer_client.post("/admin/users", data={"email": "x@example.com"}).status_code == 403
    api = viewer_client.get("/api/probe/engineer")
    assert api.status_code == 403
    assert api.json == {
        "error": "forbidden",
        "detail": "this needs the engineer role (or above); you are signed in as "
        "viewer@example.com with the viewer role. Ask an admin if you need more.",
    }


def test_engineer_works_but_cannot_manage_users(probes, engineer_client):
    assert engineer_client.get("/api/probe/engineer").json == {"ok": True}
    refused = engineer_client.get("/admin/users")
    assert refused.status_code == 403
    assert "this needs the admin role" in refused.get_data(as_text=True)
    assert engineer_client.get("/probe/admin").status_code == 403
    assert "/admin/users" not in engineer_client.get("/cases").get_data(as_text=True)


def test_admin_reaches_everything(probes, client):
    page = client.get("/admin/users")
    assert page.status_code == 200 and "admin@example.com" in page.get_data(as_text=True)
    assert client.get("/probe/admin").json == {"ok": True}
    assert client.get("/api/probe/engineer").json == {"ok": True}
    assert 'href="/admin/users"' in client.get("/cases").get_data(as_text=True)


def test_require_role_below_the_route_decorator_is_enforced_at_start_up():
    from flask import Flask

    from app.accounts.auth import init_app

    app = Flask(__name__)

    @require_role("admin")
    @app.get("/oops")
    def oops():
        return "x"

    with pytest.raises(RuntimeError, match="put it below"):
        init_app(app)
    with pytest.raises(ValueError, match="unknown role"):
        require_role("root")


# --- admins manage users ----------------------------------------------------------------


def test_admin_creates_a_user_with_a_generated_password_shown_once(app, client):
    response = client.post(
        "/admin/users",
        data={"email": "New@Example.com", "role": "engineer"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and "Created engineer new@example.com" in fragment
    password = re.search(r'id="new-password">([^<]+)<', fragment).group(1)
    assert password not in client.get("/admin/users").get_data(as_text=True)
    with app.app_context():
        assert service.authenticate("new@example.com", password).role == "engineer"


def test_admin_create_user_refuses_duplicates_and_bad_input(client, make_user):
    make_user("viewer", "taken@example.com")
    duplicate = client.post(
        "/admin/users",
        data={"email": "taken@example.com", "role": "viewer"},
        headers={"HX-Request": "true"},
    )
    assert duplicate.status_code == 422
    assert "a user with email taken@example.com already exists" in duplicate.get_data(as_text=True)
    short = client.post(
        "/admin/users", data={"email": "a@example.com", "role": "viewer", "password": "short"}
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.get_data(as_text=True)


def test_role_change_and_deactivation_take_effect_at_once(app, client, make_user):
    user_id = make_user("viewer", "v@example.com")
    other = signed_in_client(app, user_id)
    assert other.get("/admin/users").status_code == 403

    response = client.post(
        f"/admin/users/{user_id}/role", data={"role": "admin"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert other.get("/admin/users").status_code == 200

    response = client.post(f"/admin/users/{user_id}/active", data={"active": "0"})
    assert response.status_code == 302
    assert other.get("/cases").status_code == 302  # signed out everywhere
    with app.app_context():
        assert db.session.get(User, user_id).active is False
    client.post(f"/admin/users/{user_id}/active", data={"active": "1"})
    assert other.get("/cases").status_code == 200


def test_admin_cannot_demote_or_deactivate_themselves(app, client):
    with app.app_context():
        me = service.find_user("admin@example.com").id
    refused = client.post(
        f"/admin/users/{me}/role", data={"role": "viewer"}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 422
    assert "you cannot change your own role" in refused.get_data(as_text=True)
    refused = client.post(f"/admin/users/{me}/active", data={"active": "0"})
    assert refused.status_code == 302
    assert "you cannot deactivate your own account" in client.get("/admin/users").get_data(
        as_text=True
    )


def test_the_last_active_admin_stays(app, make_user):
    with app.app_context():
        only = db.session.get(User, make_user("admin", "only@example.com"))
        with pytest.raises(service.AccountError, match="last active admin"):
            service.set_role(only, "viewer")
        with pytest.raises(service.AccountError, match="last active admin"):
            service.set_active(only, False)
        db.session.get(User, make_user("admin", "second@example.com"))
        service.set_role(only, "viewer")
        assert only.role == "viewer"


def test_unknown_role_and_user_are_clear(client):
    assert client.post("/admin/users/999/role", data={"role": "admin"}).status_code == 404
    response = client.post(
        "/admin/users/1/role", data={"role": "root"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422
    assert "unknown role &#39;root&#39;" in response.get_data(as_text=True)


def test_change_own_password_signs_out_other_sessions(app, viewer_client, make_user):
    with app.app_context():
        user_id = service.find_user("viewer@example.com").id
    elsewhere = signed_in_client(app, user_id)
    assert elsewhere.get("/cases").status_code == 200
    wrong = viewer_client.post(
        "/account", data={"current": "nope", "new": "a new password", "confirm": "a new password"}
    )
    assert wrong.status_code == 422
    assert "the current password is not right" in wrong.get_data(as_text=True)
    done = viewer_client.post(
        "/account",
        data={"current": TEST_PASSWORD, "new": "a new password", "confirm": "a new password"},
    )
    assert done.status_code == 302
    with app.app_context():
        assert service.authenticate("viewer@example.com", "a new password") is not None
    assert viewer_client.get("/cases").status_code == 200  # this session was renewed
    assert elsewhere.get("/cases").status_code == 302


# --- API tokens -------------------------------------------------------------------------


def test_bearer_token_reads_the_api_and_notes_its_use(app, anonymous_client, api_token):
    token = api_token("viewer")
    response = anonymous_client.get("/api/cases", headers=bearer(token))
    assert response.status_code == 200 and response.json["total"] == 0
    assert "Set-Cookie" not in response.headers  # no session for token requests
    me = anonymous_client.get("/api/me", headers=bearer(token)).json
    assert me["role"] == "viewer" and me["authenticated_by"] == "token"
    with app.app_context():
        stored = db.session.scalar(db.select(ApiToken))
        assert stored.token_hash == service.hash_token(token) and token not in stored.prefix
        assert stored.last_used_at is not None


def test_token_use_is_written_at_most_once_a_minute(app, api_token):
    token = api_token()
    with app.app_context():
        service.user_for_token(token)
        first = db.session.scalar(db.select(ApiToken.last_used_at))
        service.user_for_token(token)
        assert db.session.scalar(db.select(ApiToken.last_used_at)) == first
        with clock.frozen_at(clock.now() + timedelta(minutes=2)):
            service.user_for_token(token)
        assert db.session.scalar(db.select(ApiToken.last_used_at)) != first


@pytest.mark.parametrize(
    "header, detail",
    [
        ("Bearer chk_not-a-real-token", "the bearer token is not valid"),
        ("Token abc", "must be 'Bearer <token>'"),
        ("Bearer ", "must be 'Bearer <token>'"),
    ],
)
def test_wrong_token_is_401_json(anonymous_client, header, detail):
    response = anonymous_client.get("/api/cases", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert detail in response.json["detail"]


def test_revoked_token_and_deactivated_user_are_refused(app, anonymous_client, api_token):
    token = api_token("engineer")
    assert anonymous_client.get("/api/cases", headers=bearer(token)).status_code == 200
    with app.app_context():
        service.revoke_token(db.session.scalar(db.select(ApiToken)))
    refused = anonymous_client.get("/api/cases", headers=bearer(token))
    assert refused.status_code == 401 and "not valid" in refused.json["detail"]

    other = api_token("admin")
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.role == "admin"))
        user.active = False
        db.session.commit()
    assert anonymous_client.get("/api/cases", headers=bearer(other)).status_code == 401


def test_token_carries_its_users_role(probes, anonymous_client, api_token):
    viewer = api_token("viewer")
    refused = anonymous_client.get("/api/probe/engineer", headers=bearer(viewer))
    assert refused.status_code == 403 and "engineer role" in refused.json["detail"]
    engineer = api_token("engineer")
    assert anonymous_client.get("/api/probe/engineer", headers=bearer(engineer)).status_code == 200


def test_tokens_are_for_the_api_not_the_console(anonymous_client, api_token):
    response = anonymous_client.get("/cases", headers=bearer(api_token("admin")))
    assert response.status_code == 302


def test_tokens_page_creates_shows_once_lists_and_revokes(app, viewer_client, anonymous_client):
    page = viewer_client.get("/account/tokens").get_data(as_text=True)
    assert "No tokens yet" in page
    created = viewer_client.post(
        "/account/tokens", data={"name": "grafana"}, headers={"HX-Request": "true"}
    )
    fragment = created.get_data(as_text=True)
    assert created.status_code == 200 and "<html" not in fragment
    token = re.search(r'id="new-token">([^<]+)<', fragment).group(1)
    assert token.startswith("chk_") and "shown only this once" in fragment
    assert anonymous_client.get("/api/cases", headers=bearer(token)).status_code == 200

    listed = viewer_client.get("/account/tokens").get_data(as_text=True)
    assert token not in listed and token[:10] + "…" in listed and "grafana" in listed

    with app.app_context():
        token_id = db.session.scalar(db.select(ApiToken.id))
    revoked = viewer_client.post(
        f"/account/tokens/{token_id}/revoke", headers={"HX-Request": "true"}
    )
    assert revoked.status_code == 200 and "revoked" in revoked.get_data(as_text=True)
    assert anonymous_client.get("/api/cases", headers=bearer(token)).status_code == 401


def test_token_form_needs_a_name(viewer_client):
    response = viewer_client.post(
        "/account/tokens", data={"name": " "}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422
    assert "Name the token after what will use it." in response.get_data(as_text=True)


def test_cannot_revoke_someone_elses_token(app, viewer_client, api_token):
    api_token("engineer")
    with app.app_context():
        token_id = db.session.scalar(db.select(ApiToken.id))
    response = viewer_client.post(f"/account/tokens/{token_id}/revoke")
    assert response.status_code == 404
    assert f"you have no token {token_id}" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is None


# --- CSRF -------------------------------------------------------------------------------


def csrf_token_from(client, path: str) -> str:
    return CSRF_INPUT.search(client.get(path).get_data(as_text=True)).group(1)


def test_csrf_refuses_console_posts_without_the_token(csrf_app, client):
    for path, data in [("/logout", {}), ("/account/tokens", {"name": "x"})]:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        page = response.get_data(as_text=True)
        assert "The CSRF token is missing." in page and "Reload the page" in page
    assert client.get("/cases").status_code == 200  # still signed in
    token = csrf_token_from(client, "/account/tokens")
    created = client.post("/account/tokens", data={"name": "x"}, headers={"X-CSRFToken": token})
    assert created.status_code == 200 and 'id="new-token"' in created.get_data(as_text=True)
    logout = client.post("/logout", data={"csrf_token": token})
    assert logout.status_code == 302


def test_csrf_protects_the_login_form(csrf_app, anonymous_client, make_user):
    make_user("viewer", "v@example.com")
    assert login(anonymous_client, "v@example.com").status_code == 400
    token = csrf_token_from(anonymous_client, "/login")
    assert login(anonymous_client, "v@example.com", csrf_token=token).status_code == 302


def test_csrf_on_session_api_writes_but_not_on_bearer_ones(
    probes, csrf_app, client, anonymous_client, api_token
):
    refused = client.post("/api/probe/write")
    assert refused.status_code == 400
    assert refused.json["error"] == "csrf_failed"
    assert "X-CSRFToken" in refused.json["detail"] and "Bearer" in refused.json["detail"]

    token = csrf_token_from(client, "/account/tokens")
    allowed = client.post("/api/probe/write", headers={"X-CSRFToken": token})
    assert allowed.json == {"ok": True}

    with_bearer = anonymous_client.post("/api/probe/write", headers=bearer(api_token()))
    assert with_bearer.status_code == 200 and with_bearer.json == {"ok": True}
    nobody = anonymous_client.post("/api/probe/write")
    assert nobody.status_code == 401  # not a CSRF error: say how to authenticate
    assert client.get("/api/cases").status_code == 200  # reads need no token


def test_csrf_does_not_touch_webhooks(csrf_app, anonymous_client, github):
    github.client = anonymous_client
    assert github.send_fixture("issues.opened").status_code == 202


# --- CLI --------------------------------------------------------------------------------


def test_users_bootstrap_prints_a_password_only_the_first_time(app, runner):
    first = runner.invoke(args=["users", "bootstrap"])
    assert first.exit_code == 0, first.output
    assert "Email:    admin@localhost" in first.output and "shown only now" in first.output
    password = re.search(r"Password: (\S+)", first.output).group(1)
    with app.app_context():
        assert service.authenticate("admin@localhost", password).role == "admin"
    again = runner.invoke(args=["users", "bootstrap"])
    assert again.exit_code == 0 and again.output == ""


def test_users_bootstrap_honours_casehook_admin_email(app, runner):
    app.config["ADMIN_EMAIL"] = "ops@example.com"
    result = runner.invoke(args=["users", "bootstrap"])
    assert "Email:    ops@example.com" in result.output


def test_users_create_and_list(app, runner):
    generated = runner.invoke(
        args=["users", "create", "--email", "a@example.com", "--role", "engineer"]
    )
    assert generated.exit_code == 0, generated.output
    assert "Created engineer a@example.com" in generated.output
    assert re.search(r"Password: \S{16}", generated.output)
    chosen = runner.invoke(
        args=["users", "create", "--email", "b@example.com", "--role", "viewer",
              "--password", "long enough password", "--json"]
    )  # fmt: skip
    assert json.loads(chosen.output) == {"id": 2, "email": "b@example.com", "role": "viewer"}
    duplicate = runner.invoke(
        args=["users", "create", "--email", "A@example.com", "--role", "admin"]
    )
    assert duplicate.exit_code == 1
    assert "Error: a user with email a@example.com already exists" in duplicate.output
    bad_role = runner.invoke(args=["users", "create", "--email", "c@example.com", "--role", "root"])
    assert bad_role.exit_code == 2
    listed = runner.invoke(args=["users", "list"]).output
    assert "engineer active      a@example.com" in listed and "b@example.com" in listed
    assert [
        u["email"] for u in json.loads(runner.invoke(args=["users", "list", "--json"]).output)
    ] == [
        "a@example.com",
        "b@example.com",
    ]


def test_users_set_password(app, runner, make_user):
    make_user("viewer", "v@example.com")
    result = runner.invoke(args=["users", "set-password", "--email", "v@example.com"])
    assert result.exit_code == 0, result.output
    password = re.search(r"Password: (\S+)", result.output).group(1)
    with app.app_context():
        assert service.authenticate("v@example.com", password) is not None
    missing = runner.invoke(args=["users", "set-password", "--email", "x@example.com"])
    assert missing.exit_code == 1 and "there is no user 'x@example.com'" in missing.output


def test_tokens_create_json_then_list_and_revoke(app, runner, anonymous_client, make_user):
    make_user("engineer", "e@example.com")
    result = runner.invoke(args=["tokens", "create", "--user", "e@example.com", "--json"])
    assert result.exit_code == 0, result.output
    token = json.loads(result.output)["token"]
    me = anonymous_client.get("/api/me", headers=bearer(token)).json
    assert me["email"] == "e@example.com" and me["role"] == "engineer"

    plain = runner.invoke(args=["tokens", "create", "--user", "e@example.com", "--name", "ci"])
    assert "Shown only now" in plain.output and "chk_" in plain.output
    listed = runner.invoke(args=["tokens", "list"]).output
    assert token not in listed and token[:10] in listed and " ci" in listed

    revoked = runner.invoke(args=["tokens", "revoke", "1"])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    assert anonymous_client.get("/api/me", headers=bearer(token)).status_code == 401
    unknown = runner.invoke(args=["tokens", "create", "--user", "no@example.com"])
    assert unknown.exit_code == 1 and "there is no user 'no@example.com'" in unknown.output
