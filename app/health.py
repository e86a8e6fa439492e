"""Liveness and readiness probes for operators and load balancers."""

from flask import Blueprint, jsonify
from sqlalchemy import text

from app import storage
from app.extensions import db
from app.tasks.queue import redis_connection

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers: ``200 {"status": "ok"}``."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """``200`` when the database and Redis answer, else ``503`` naming what did not;
    ``status`` is ``degraded`` (still 200) when only the attachment store fails."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, do not raise: this is a probe
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        redis_connection().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    # Attachments are reported, not required: with the object store down, webhooks are
    # still taken in and cases worked, so a load balancer must keep sending traffic.
    checks["attachments"] = attachments_check()
    status = "not_ready" if not ready else "ready" if checks["attachments"] == "ok" else "degraded"
    return jsonify(status=status, checks=checks), 200 if ready else 503


def attachments_check() -> str:
    """``"ok"``, or ``"error: <what to check>"`` when the attachment store cannot be used."""
    try:
        storage.current().check()
    except storage.StorageError as exc:
        return f"error: {exc}"
    return "ok"
