"""Config as code for subscriptions: the ``subscriptions:`` list in the YAML files of
``CASEHOOK_CONFIG_DIR``, synced with the endpoints (``app/webhooks/config_sync.py``)::

    subscriptions:
      - id: ops-feed                  # stable, 3-26 letters, digits, - or _
        url: https://ops.example.com/casehook
        event_types: ["case.*"]
        secret_env: OPS_FEED_SECRET   # a whsec_ secret, never written in the file
        description: Ops dashboard    # optional
        endpoint_id: gh-main          # optional filters
        provider: github
        headers: {X-Team: ops}        # optional
        enabled: true                 # optional, default true

A sync creates, updates and deletes config-owned subscriptions to match; ones made in the
console are left alone. The URL passes the SSRF guard at sync time, like any other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from app import clock
from app.extensions import db
from app.outbound import service
from app.outbound.models import Subscription
from app.outbound.service import SubscriptionError

KEYS = {
    "id",
    "url",
    "event_types",
    "secret_env",
    "description",
    "endpoint_id",
    "provider",
    "headers",
    "enabled",
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,25}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def declared(config_dir: Path, problems: list[str]) -> list[tuple[str, int, dict]]:
    """``(file, line, item)`` for every subscription in the files; adds what is wrong to
    ``problems`` as "file line N: ..."."""
    from app.webhooks.config_sync import _LINE, _LineLoader, _strip_lines

    found, seen = [], {}
    for path in sorted([*config_dir.glob("*.yaml"), *config_dir.glob("*.yml")]):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # the endpoints' loader has reported it
        items = document.get("subscriptions") if isinstance(document, dict) else None
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(f"{path.name}: 'subscriptions' must be a list")
            continue
        for item in items:
            line = item.get(_LINE, 0) if isinstance(item, dict) else 0
            where = f"{path.name} line {line}"
            if not isinstance(item, dict):
                problems.append(f"{path.name}: each subscription must be a mapping")
                continue
            item = _strip_lines(item)
            if unknown := set(item) - KEYS:
                problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
            if not _ID.match(str(item.get("id") or "")):
                problems.append(f"{where}: id must be 3-26 letters, digits, '-' or '_'")
            elif item["id"] in seen:
                problems.append(
                    f"{where}: subscription id {item['id']!r} is already declared "
                    f"in {seen[item['id']]}"
                )
            seen.setdefault(str(item.get("id")), where)
            if not _ENV.match(str(item.get("secret_env") or "")):
                problems.append(
                    f"{where}: secret_env must name an environment variable; "
                    "secrets are never written in config files"
                )
            try:
                probe = Subscription(event_types=[], headers={}, enabled=True)
                service.apply_fields(probe, {k: v for k, v in item.items() if k in service.FIELDS})
            except SubscriptionError as exc:
                problems.append(f"{where}: subscription {item.get('id')}: {exc.detail}")
            found.append((path.name, line, item))
    return found


def sync_subscriptions(config_dir: Path) -> list[str]:
    """Make config-owned subscriptions match the files; returns the changes (uncommitted).
    Raises ``ConfigError`` when a declaration is invalid or an id belongs to the console."""
    from app.webhooks.config_sync import ConfigError

    problems: list[str] = []
    wanted = declared(config_dir, problems)
    if problems:
        raise ConfigError(problems)
    changes = []
    for file, line, item in wanted:
        subscription = db.session.get(Subscription, item["id"])
        label = f"subscription {item['id']}"
        if subscription is not None and subscription.source != "config":
            raise ConfigError(
                [
                    f"{file} line {line}: id {item['id']!r} belongs to a "
                    "subscription made in the console; choose another id"
                ]
            )
        fields = {
            "description": "",
            "endpoint_id": None,
            "provider": None,
            "headers": {},
            **{k: v for k, v in item.items() if k in service.FIELDS},
        }
        fields.setdefault("enabled", True)
        if subscription is None:
            subscription = Subscription(
                id=item["id"], source="config", event_types=[], headers={}, consecutive_failures=0
            )
            db.session.add(subscription)
            service.apply_fields(subscription, fields)
            changes.append(f"create {label} ({file})")
        else:
            before = _snapshot(subscription)
            if fields["enabled"] == subscription.enabled:
                fields.pop("enabled")  # keep the failure record of an enabled subscription
            service.apply_fields(subscription, fields)
            differing = [k for k, v in _snapshot(subscription).items() if before[k] != v]
            if differing or subscription.secret_env != item["secret_env"]:
                changes.append(f"update {label}: {', '.join(differing) or 'secret_env'}")
        subscription.secret_env, subscription.secret_encrypted = item["secret_env"], None
        subscription.config_file = file
        subscription.updated_at = clock.now()
    names = {item["id"] for _f, _l, item in wanted}
    for subscription in db.session.scalars(
        db.select(Subscription).where(Subscription.source == "config")
    ):
        if subscription.id not in names:
            db.session.delete(subscription)
            changes.append(f"delete subscription {subscription.id}")
    db.session.flush()
    return changes


def _snapshot(subscription: Subscription) -> dict[str, Any]:
    return {key: getattr(subscription, key) for key in service.FIELDS}
