"""Casehook: webhooks in, cases out.

Where a webhook becomes a case: ``webhooks/routes.py`` (receive) → ``webhooks/ingest.py``
(verify, store, wake) → ``webhooks/inbox.py`` (drained by RQ jobs, ``webhooks/jobs.py``) →
``webhooks/processing.py`` (match commands) → ``cases/service.py`` (open, update, close;
writes case events through ``events/record.py``). Slow work is a task (``tasks/``).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException

from app import config
from app.extensions import csrf, db, htmx, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent
#: Packages that add to the case page (see app/cases/panels.py).
FEATURES = ("branches", "handoffs", "outputs", "replies", "agents")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Application factory.

    ``test_config`` overrides what the environment says (see ``app/config.py``).
    """
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config.from_environment(Path(app.instance_path), test_config))
    app.config["SQLALCHEMY_DATABASE_URI"] = config.normalise_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 15}})
    else:
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})

    from app import storage

    storage.init_app(app)  # a malformed CASEHOOK_ATTACHMENTS_URL stops the start here
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)

    from app import errors, health, inputs, logs, security
    from app.accounts import auth, throttle
    from app.accounts import bp as accounts_bp
    from app.accounts import models as _accounts  # noqa: F401
    from app.accounts.cli import register_cli as register_accounts_cli
    from app.api import bp as api_bp
    from app.cases import bp as cases_bp
    from app.cases import models as _cases  # noqa: F401  (every model, for migrations)
    from app.events import models as _events  # noqa: F401
    from app.metrics import routes as metrics
    from app.tasks import kinds as task_kinds
    from app.tasks import models as _tasks  # noqa: F401
    from app.webhooks import bp as webhooks_bp
    from app.webhooks import models as _webhooks  # noqa: F401
    from app.webhooks.cli import register_cli
    from app.writing.routes import bp as writing_bp

    logs.configure()
    inputs.init_app(app)  # before the blueprints: it replaces the <int:> converter
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(writing_bp)
    app.register_blueprint(import_module("app.outbound").bp)  # subscriptions (outbound webhooks)
    # Features that work a case: each package brings its blueprint, models and case panel.
    for feature in FEATURES:
        app.register_blueprint(import_module(f"app.{feature}").bp)
    # Inbound routes authenticate by signature, so CSRF does not apply to them. Under
    # /api/ only session-authenticated writes need the CSRF token (accounts/auth.py).
    csrf.exempt("app.webhooks.routes.ingest")
    auth.make_public(health.bp)
    auth.make_public(metrics.bp)  # a bearer token of its own (CASEHOOK_METRICS_TOKEN)
    auth.init_app(app)
    task_kinds.load_kinds()
    register_cli(app)
    register_accounts_cli(app)
    import_module("app.tasks.cli").register_cli(app)  # flask tasks
    import_module("app.events.cli").register_cli(app)  # flask sync
    import_module("app.cases.cli").register_cli(app)  # flask cases, endpoints callback-token
    import_module("app.agents.cli").register_cli(app)  # flask agents
    import_module("app.outbound.cli").register_cli(app)  # flask subscriptions

    from app.templating import register_filters

    register_filters(app)
    app.register_error_handler(HTTPException, _http_error)
    throttle.init_app(app)  # its 429 handler is more specific than _http_error
    import_module("app.webhooks.routes").init_app(app)  # the ingest route's fast path
    security.init_app(app)  # after it: ProxyFix, when configured, wraps everything
    # Every domain refusal (a value that cannot be used, a transition the status forbids,
    # ...) not caught by its view: one JSON body or the error page (app/errors.py).
    errors.init_app(app)
    app.session_interface = _SessionInterface()
    return app


class _SessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, skipped on inbound webhooks: they never use it, and
    opening it (building the signer) is measurable work on the hottest route."""

    def open_session(self, app: Flask, request: Any):
        if request.path.startswith("/webhooks/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _http_error(error: HTTPException):
    """Machines get ``{"error", "detail"}``; people get a readable page."""
    from app.errors import wants_json

    if wants_json():
        body = {"error": _slug(error.name), "detail": error.description}
        return jsonify(body), error.code
    return render_template("error.html", error=error), error.code


def _slug(name: str | None) -> str:
    return (name or "error").lower().replace(" ", "_")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets the console read while the worker writes; the busy timeout waits out writers."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def __getattr__(name: str) -> Any:
    # `gunicorn app:app` imports this package (it shadows app.py), so offer `app` lazily here.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
