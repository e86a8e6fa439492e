"""Configuration read from the environment (twelve-factor), with embedded defaults.

Every setting can be overridden by ``create_app(test_config)``.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

MiB = 1024 * 1024


def normalise_database_url(url: str) -> str:
    """Return a SQLAlchemy URL for ``url``, choosing the psycopg 3 driver for Postgres.

    PaaS add-ons hand out ``postgres://`` URLs, which SQLAlchemy does not accept, and a bare
    ``postgresql://`` would pick psycopg2, which we do not install.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_key(instance_path: Path) -> str:
    """``SECRET_KEY`` from the environment, else one generated once and kept under instance/."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def metrics_directory(instance_path: Path) -> Path:
    """Where prometheus-client keeps its multiprocess files: ``PROMETHEUS_MULTIPROC_DIR``,
    else ``instance/prometheus``. The web and worker processes of one machine share it, so
    ``/metrics`` adds up what every process counted (read once, when app/metrics loads)."""
    return Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or instance_path / "prometheus")


def from_environment(instance_path: Path, overrides: dict | None = None) -> dict:
    """Build the config mapping from environment variables (see README, "Configuration").

    ``overrides`` (a test config) win; a ``SECRET_KEY`` there means none is generated.
    """
    env = os.environ
    overrides = overrides or {}
    sqlite_file = instance_path / "casehook.sqlite3"
    secret_key = overrides.get("SECRET_KEY") or _secret_key(instance_path)
    secure_cookies = env.get("CASEHOOK_SECURE_COOKIES", "0") == "1"
    return {
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(
            env.get("DATABASE_URL") or f"sqlite:///{sqlite_file}"
        ),
        "REDIS_URL": env.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "RQ_QUEUE": env.get("CASEHOOK_QUEUE", "casehook"),
        # GitHub caps payloads at 25 MiB; so do we, by default.
        "MAX_CONTENT_LENGTH": int(env.get("CASEHOOK_MAX_BODY_BYTES", 25 * MiB)),
        "PUBLIC_URL": env.get("CASEHOOK_PUBLIC_URL", f"http://localhost:{env.get('PORT', '5000')}"),
        # The supervisor (app/tasks/supervisor.py) ticks this often (seconds) in one worker.
        "SUPERVISOR_INTERVAL_SECONDS": float(env.get("CASEHOOK_SUPERVISOR_INTERVAL_SECONDS", 2)),
        # Deliveries waiting this long (seconds) with no worker on their partition are woken
        # again by the supervisor (their wake-up was lost: Redis restarted, a worker died).
        "SWEEP_AFTER_SECONDS": float(env.get("CASEHOOK_SWEEP_AFTER_SECONDS", 10)),
        # Inactivity rules (close or park idle cases) run this often (seconds).
        "SWEEP_INTERVAL_SECONDS": float(env.get("CASEHOOK_SWEEP_INTERVAL_SECONDS", 60)),
        # Deliveries of one partition run in arrival order; partitions run in parallel.
        "INBOX_PARTITIONS": int(env.get("CASEHOOK_INBOX_PARTITIONS", 16)),
        # Ingest hands its wake-ups to a thread that sends them to Redis together after this
        # long (milliseconds), so no request waits on Redis; 0: each request wakes at once.
        "INBOX_WAKE_DELAY_MS": float(env.get("CASEHOOK_INBOX_WAKE_DELAY_MS", 10)),
        # A worker draining a partition, or running a task, renews its lease this long
        # (seconds); a killed worker's work is taken over once it runs out.
        "INBOX_LEASE_SECONDS": float(env.get("CASEHOOK_INBOX_LEASE_SECONDS", 20)),
        "TASK_LEASE_SECONDS": float(env.get("CASEHOOK_TASK_LEASE_SECONDS", 30)),
        # A due task whose wake-up is older than this (seconds) is woken again.
        "TASK_WAKE_STALE_SECONDS": float(env.get("CASEHOOK_TASK_WAKE_STALE_SECONDS", 30)),
        "TASK_DEFAULT_TIMEOUT_SECONDS": 300,
        # Agents (app/agents): seconds between SIGTERM and SIGKILL of a run's process group;
        # how often a running agent's output is saved for the case page, and its task's
        # status read for a cancel; the API base URL agents get (with a token scoped to the
        # case) in CASEHOOK_API_URL, none when unset.
        "AGENT_KILL_GRACE_SECONDS": float(env.get("CASEHOOK_AGENT_KILL_GRACE_SECONDS", 5)),
        "AGENT_STREAM_SECONDS": float(env.get("CASEHOOK_AGENT_STREAM_SECONDS", 1)),
        "AGENT_CANCEL_POLL_SECONDS": float(env.get("CASEHOOK_AGENT_CANCEL_POLL_SECONDS", 1)),
        "AGENT_API_URL": env.get("CASEHOOK_AGENT_API_URL") or None,
        "CASES_PER_PAGE": 25,
        "POLL_SECONDS": int(env.get("CASEHOOK_POLL_SECONDS", 3)),
        # Session and "keep me signed in" cookies: no script access, not sent on cross-site
        # POSTs, HTTPS-only when CASEHOOK_SECURE_COOKIES=1 (set it behind TLS).
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_DURATION": timedelta(days=14),
        # The CSRF token lives as long as the session: an on-call console stays open for
        # hours, and an expired token would make every htmx action fail.
        "WTF_CSRF_TIME_LIMIT": None,
        "ADMIN_EMAIL": env.get("CASEHOOK_ADMIN_EMAIL", "admin@localhost"),
        # Failed password checks (sign-in, password change) allowed per client address and
        # per account before 429 (app/accounts/throttle.py); "N/second|minute|hour|day".
        "LOGIN_LIMIT_PER_IP": env.get("CASEHOOK_LOGIN_LIMIT_PER_IP", "10/minute"),
        "LOGIN_LIMIT_PER_ACCOUNT": env.get("CASEHOOK_LOGIN_LIMIT_PER_ACCOUNT", "5/minute"),
        # Sync (app/events/sync.py): events go to SYNC_URL in batches of at most
        # SYNC_BATCH_SIZE, at most one batch per SYNC_INTERVAL_SECONDS; failures back off
        # exponentially from SYNC_BACKOFF_START to SYNC_BACKOFF_MAX seconds (with jitter).
        "SYNC_URL": env.get("CASEHOOK_SYNC_URL") or None,
        "SYNC_TOKEN": env.get("CASEHOOK_SYNC_TOKEN") or None,
        "SYNC_BATCH_SIZE": min(1000, int(env.get("CASEHOOK_SYNC_BATCH_SIZE", 1000))),
        "SYNC_INTERVAL_SECONDS": float(env.get("CASEHOOK_SYNC_INTERVAL_SECONDS", 5)),
        "SYNC_BACKOFF_START": float(env.get("CASEHOOK_SYNC_BACKOFF_START", 0.5)),
        "SYNC_BACKOFF_MAX": float(env.get("CASEHOOK_SYNC_BACKOFF_MAX", 30)),
        "SYNC_TIMEOUT_SECONDS": float(env.get("CASEHOOK_SYNC_TIMEOUT_SECONDS", 10)),
        # Reverse proxies in front that set X-Forwarded-For/-Proto (0: none, use the peer).
        "TRUSTED_PROXIES": int(env.get("CASEHOOK_TRUSTED_PROXIES", 0)),
        # GET /metrics wants "Authorization: Bearer <this>" when set; open when unset.
        "METRICS_TOKEN": env.get("CASEHOOK_METRICS_TOKEN") or None,
        # Outbound webhooks (app/outbound/): hosts or CIDRs exempt from the SSRF guard;
        # seconds before each retry (Svix's schedule, jittered ±10%); per-request timeout;
        # a subscription failing this many days, or this many messages in a row, is disabled.
        "OUTBOUND_ALLOW": env.get("CASEHOOK_OUTBOUND_ALLOW", ""),
        "OUTBOUND_RETRY_SCHEDULE": env.get(
            "CASEHOOK_OUTBOUND_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000"
        ),
        "OUTBOUND_TIMEOUT_SECONDS": float(env.get("CASEHOOK_OUTBOUND_TIMEOUT_SECONDS", 15)),
        "OUTBOUND_DISABLE_AFTER_DAYS": float(env.get("CASEHOOK_OUTBOUND_DISABLE_AFTER_DAYS", 5)),
        "OUTBOUND_DISABLE_AFTER_FAILURES": int(
            env.get("CASEHOOK_OUTBOUND_DISABLE_AFTER_FAILURES", 100)
        ),
        # Note attachments (app/storage.py): ATTACHMENTS_URL "s3://bucket/prefix" keeps them
        # in S3-compatible object storage, which several web boxes share (boto3 reads the
        # usual AWS variables itself: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
        # AWS_ENDPOINT_URL for MinIO and the like); unset, they go to the ATTACHMENTS_DIR
        # folder of this machine.
        "ATTACHMENTS_URL": env.get("CASEHOOK_ATTACHMENTS_URL") or None,
        "ATTACHMENTS_DIR": env.get("CASEHOOK_ATTACHMENTS_DIR")
        or str(instance_path / "attachments"),
        **overrides,
    }
