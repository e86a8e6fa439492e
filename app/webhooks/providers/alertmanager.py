"""Prometheus Alertmanager webhook receiver (payload version 4): auth header, derived ids.

Prometheus docs, "Alertmanager configuration", ``<webhook_config>``: Alertmanager POSTs
``{"version": "4", "groupKey", "status": "firing"|"resolved", "receiver", "groupLabels",
"commonLabels", "commonAnnotations", "externalURL", "truncatedAlerts", "alerts": [...]}``;
each alert has ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL`` and ``fingerprint``. It signs nothing: its ``http_config`` sends either
``Authorization: Bearer <credentials>`` (``authorization`` / ``bearer_token``) or
``Authorization: Basic base64(user:password)`` (``basic_auth``). The endpoint's secret is the
bearer token or the basic-auth password (any user name); compared in constant time.

No delivery id either: it is derived, ``am:`` + SHA-256 of the ``groupKey``, the group
``status`` and each alert's fingerprint, status, ``startsAt`` and ``endsAt`` (sorted). A retry
or a ``repeat_interval`` re-send of the same notification is the same delivery; a change in
the group (an alert added or resolved, a re-fire after a resolve) is a new one.

A notification carries a group of alerts. By default ``split`` gives one
``(alert.<alert status>, alert)`` per alert, the alert merged with its group's context
(``groupKey``, ``receiver``, ``externalURL``, ``commonLabels``), and each alert is its own case
keyed by its ``fingerprint`` (derived from its sorted labels when absent). An endpoint with
settings ``{"group_by": "groupKey"}`` makes one case per group instead, keyed by ``groupKey``,
with the group's status.

Case facts: title ``<alertname>: <summary|title|description> on <instance>``; severity from
``labels.severity`` (critical → critical; error, major, high → error; warning, minor → warning;
else info); source URL the alert's ``generatorURL``, else ``externalURL``.

Built-in commands: ``alert.firing`` → ``open_case`` (reopens a resolved alert's case);
``alert.resolved`` → ``close_case`` (auto).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from app.webhooks.commands import Command
from app.webhooks.providers.base import (
    CaseFacts,
    Incident,
    Provider,
    VerificationError,
    constant_time_equal,
    excerpt,
    http_url,
    incident_fields,
    mapping,
    one_line,
    require_header,
    text_of,
)

AUTH_HEADER = "Authorization"
#: Group fields each alert carries along when the group is split into alerts.
GROUP_CONTEXT = ("groupKey", "receiver", "externalURL", "commonLabels")
SEVERITIES = {
    "critical": "critical",
    "error": "error",
    "major": "error",
    "high": "error",
    "warning": "warning",
    "warn": "warning",
    "minor": "warning",
}
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
DETAIL_EXCERPT = 200
#: Alerts a whole group's incident lists, one line each (a storm sends hundreds).
MAX_LISTED_ALERTS = 50


def fingerprint(alert: Mapping[str, Any]) -> str:
    """The alert's ``fingerprint``, or one derived from its sorted labels when it has none."""
    given = text_of(alert.get("fingerprint"))
    if given:
        return given
    labels = {str(k): str(v) for k, v in mapping(alert.get("labels")).items()}
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return "labels:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Alertmanager(Provider):
    name = "alertmanager"
    display_name = "Alertmanager"
    secret_hint = "the receiver's bearer credentials or basic-auth password"
    monitoring = True
    known_settings = {"group_by": ("fingerprint", "groupKey")}
    setting_help = {
        "group_by": "fingerprint: one case per alert; groupKey: one case per Alertmanager group."
    }

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        # No signature and no delivery id: http_config's bearer token, the id comes from the body.
        return {AUTH_HEADER: f"Bearer {secret}"}

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        value = require_header(
            headers,
            AUTH_HEADER,
            "set http_config.authorization (Bearer) or http_config.basic_auth in the "
            "Alertmanager receiver, with this endpoint's secret as the credentials or password",
        )
        scheme, _, credentials = value.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            given = credentials
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise VerificationError(
                    "bad_token",
                    f"{AUTH_HEADER} Basic credentials are not base64 of user:password",
                ) from None
            _user, colon, given = decoded.partition(":")
            if not colon:
                raise VerificationError(
                    "bad_token", f"{AUTH_HEADER} Basic credentials have no password"
                )
        else:
            raise VerificationError(
                "bad_token",
                f"{AUTH_HEADER} uses the {scheme[:20]!r} scheme; send Bearer or Basic",
            )
        if not constant_time_equal(given, secret):
            raise VerificationError(
                "bad_token",
                f"{AUTH_HEADER} {scheme.capitalize()} credentials do not match this "
                "endpoint's secret",
            )

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        payload = mapping(payload)
        alerts = sorted(
            [
                fingerprint(alert),
                text_of(alert.get("status")),
                text_of(alert.get("startsAt")),
                text_of(alert.get("endsAt")),
            ]
            for alert in _alerts(payload)
        )
        canonical = json.dumps(
            [text_of(payload.get("groupKey")), text_of(payload.get("status")), alerts],
            separators=(",", ":"),
        )
        return "am:" + hashlib.sha256(canonical.encode()).hexdigest()

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        return "alert." + text_of(mapping(payload).get("status"), "unknown")[:100]

    def split(
        self, event_type: str, payload: dict, settings: Mapping[str, Any]
    ) -> list[tuple[str, dict]]:
        payload = mapping(payload)
        if text_of(mapping(settings).get("group_by")) == "groupKey":
            return [(event_type, payload)]
        context = {key: payload.get(key) for key in GROUP_CONTEXT}
        group_status = text_of(payload.get("status"), "unknown")
        return [
            (
                "alert." + text_of(alert.get("status"), group_status)[:100],
                {**alert, **context, "fingerprint": fingerprint(alert)},
            )
            for alert in _alerts(payload)
        ]

    def ordering_key(self, event_type: str, payload: dict) -> str | None:
        # One notification carries a group's alerts: the group orders them.
        return text_of(mapping(payload).get("groupKey")) or None

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        if isinstance(payload.get("alerts"), list):
            return _group_facts(event_type, payload)
        return _alert_facts(event_type, payload)

    def incident(self, event_type: str, payload: Any) -> Incident:
        """One alert: its summary and description as the body, the runbook as a link, its
        labels, status and start; a whole group (``group_by: groupKey``): each alert's line."""
        payload = mapping(payload)
        if isinstance(payload.get("alerts"), list):
            annotations = mapping(payload.get("commonAnnotations"))
            lines = [
                f"- **{text_of(mapping(a.get('labels')).get('instance'), 'alert')}** "
                f"({text_of(a.get('status'), 'unknown')}): "
                + one_line(
                    mapping(a.get("annotations")).get("description")
                    or mapping(a.get("annotations")).get("summary")
                )
                for a in _alerts(payload)
            ]
            if len(lines) > MAX_LISTED_ALERTS:  # a storm: the first ones and how many more
                more = len(lines) - MAX_LISTED_ALERTS
                lines = [*lines[:MAX_LISTED_ALERTS], f"- … and {more} more"]
            return Incident(
                body_markdown="\n".join(lines),
                fields=_alert_fields(
                    payload.get("status"), annotations, mapping(payload.get("commonLabels")), None
                ),
                level=text_of(mapping(payload.get("commonLabels")).get("severity")),
            )
        annotations = mapping(payload.get("annotations"))
        labels = mapping(payload.get("labels"))
        summary = text_of(annotations.get("summary")) or text_of(annotations.get("title"))
        description = text_of(annotations.get("description"))
        body = "\n\n".join([f"**{summary}**"] * bool(summary) + [description] * bool(description))
        return Incident(
            body_markdown=body,
            fields=_alert_fields(payload.get("status"), annotations, labels, payload),
            level=text_of(labels.get("severity")),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS


def _alert_facts(event_type: str, alert: dict) -> CaseFacts:
    labels = mapping(alert.get("labels"))
    annotations = mapping(alert.get("annotations"))
    status = event_type.removeprefix("alert.")
    title = _title(text_of(labels.get("alertname")), annotations, text_of(labels.get("instance")))
    severity = text_of(labels.get("severity")) or text_of(
        mapping(alert.get("commonLabels")).get("severity")
    )
    said = one_line(annotations.get("description")) or one_line(annotations.get("summary"))
    if status == "resolved":
        ended = text_of(alert.get("endsAt"))
        summary = f"resolved at {ended}" if ended else "resolved"
    else:
        summary = f"{status}: {excerpt(said, DETAIL_EXCERPT)}" if said else status
    return CaseFacts(
        dedup_key=fingerprint(alert)[:500],
        title=title,
        severity=_severity(severity),
        source_url=http_url(alert.get("generatorURL")) or http_url(alert.get("externalURL")),
        summary=summary,
    )


def _group_facts(event_type: str, group: dict) -> CaseFacts:
    common = mapping(group.get("commonLabels"))
    alerts = _alerts(group)
    name = text_of(common.get("alertname")) or text_of(
        mapping(group.get("groupLabels")).get("alertname")
    )
    title = _title(name, mapping(group.get("commonAnnotations")), text_of(common.get("instance")))
    if not mapping(group.get("commonAnnotations")) and alerts:
        title = f"{title} ({len(alerts)} alert{'s' if len(alerts) != 1 else ''})"
    if text_of(common.get("severity")):
        severity = _severity(text_of(common.get("severity")))
    else:
        severity = max(
            (_severity(text_of(mapping(a.get("labels")).get("severity"))) for a in alerts),
            key=SEVERITY_RANK.__getitem__,
            default="info",
        )
    firing = sum(1 for a in alerts if text_of(a.get("status")) == "firing")
    resolved = sum(1 for a in alerts if text_of(a.get("status")) == "resolved")
    group_key = text_of(group.get("groupKey"))
    return CaseFacts(
        dedup_key=group_key[:500] or None,
        title=title,
        severity=severity,
        source_url=http_url(group.get("externalURL"))
        or next((u for a in alerts if (u := http_url(a.get("generatorURL")))), None),
        summary=f"{event_type.removeprefix('alert.')}: {firing} firing, {resolved} resolved",
    )


#: Annotations the body already shows (``incident``) or that are links.
_SHOWN_ANNOTATIONS = ("summary", "title", "description", "runbook_url", "runbook")


def _alert_fields(status: Any, annotations: dict, labels: dict, alert: dict | None) -> tuple:
    """An alert's (or a group's) facts: status, the runbook as a link, when it started, its
    labels and its other annotations, each under its own name."""
    alert = alert or {}
    runbook = http_url(annotations.get("runbook_url")) or http_url(annotations.get("runbook"))
    return incident_fields(
        ("Status", status),
        ("Runbook", runbook, runbook),
        ("Started", alert.get("startsAt")),
        (
            "Source",
            "Prometheus graph" if http_url(alert.get("generatorURL")) else "",
            alert.get("generatorURL"),
        ),
        *((name, value) for name, value in list(labels.items())[:30]),
        *(
            (name, value)
            for name, value in list(annotations.items())[:30]
            if name not in _SHOWN_ANNOTATIONS
        ),
    )


def _title(name: str, annotations: dict, instance: str) -> str:
    detail = (
        one_line(annotations.get("summary"))
        or one_line(annotations.get("title"))
        or one_line(annotations.get("description"))
    )
    title = name or "Alert"
    if detail:
        title = f"{title}: {excerpt(detail, DETAIL_EXCERPT)}"
    if instance and instance not in title:
        title = f"{title} on {instance}"
    return title[:300]


def _alerts(payload: dict) -> list[dict]:
    alerts = payload.get("alerts")
    return (
        [alert for alert in alerts if isinstance(alert, dict)] if isinstance(alerts, list) else []
    )


def _severity(value: str) -> str:
    return SEVERITIES.get(value.lower(), "info")


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="alertmanager.firing",
        trigger=("alert.firing",),
        action="open_case",
        priority=10,
        description="An alert fires: open its case (or reopen it after a resolve).",
    ),
    Command(
        name="alertmanager.resolved",
        trigger=("alert.resolved",),
        action="close_case",
        priority=10,
        description="An alert resolved: close its case (reason auto).",
    ),
]
