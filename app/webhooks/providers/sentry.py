"""Sentry: ``Sentry-Hook-Signature``, ``Sentry-Hook-Timestamp``, ``Request-ID``, resource.action.

Sentry docs, "Integration Platform > Webhooks": every request carries ``Request-ID``,
``Sentry-Hook-Resource`` (``issue``, ``error``, ``event_alert``, ``metric_alert``,
``comment``, ``installation``), ``Sentry-Hook-Timestamp`` (Unix seconds) and
``Sentry-Hook-Signature``, the hex HMAC-SHA256 of the raw body under the integration's client
secret. The timestamp is not signed, so freshness is a separate check (Casehook allows 300 s
either way, as Slack and Standard Webhooks do). The body's ``action`` says what happened
(issue: ``created``, ``resolved``, ``assigned``, ``ignored``/``archived``, ``unresolved``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from app.text import storable
from app.webhooks.commands import Command
from app.webhooks.providers.base import (
    MAX_DELIVERY_ID,
    CaseFacts,
    Incident,
    Provider,
    ReplyError,
    ReplyResult,
    ReplySettings,
    answer_excerpt,
    bearer,
    check_signature,
    check_timestamp,
    event_and_action,
    header,
    hmac_sha256_hex,
    http_url,
    incident_fields,
    mapping,
    remark,
    require_header,
    send,
    text_of,
)

SIGNATURE_HEADER = "Sentry-Hook-Signature"
TIMESTAMP_HEADER = "Sentry-Hook-Timestamp"
RESOURCE_HEADER = "Sentry-Hook-Resource"
DELIVERY_HEADER = "Request-ID"

LEVEL_SEVERITY = {"fatal": "critical", "error": "error", "warning": "warning"}
METRIC_ALERT_SEVERITY = {"critical": "critical", "warning": "warning"}


def sign(secret: str, body: bytes) -> str:
    """The ``Sentry-Hook-Signature`` value Sentry would send for ``body``."""
    return hmac_sha256_hex(secret, body)


class Sentry(Provider):
    name = "sentry"
    display_name = "Sentry"
    secret_hint = "the integration's Client Secret"
    secret_from_provider = (
        "Sentry makes the client secret: paste it from the integration's settings"
    )
    monitoring = True
    default_api_url = "https://sentry.io/api/0"

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        return {
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: sign(secret, body),
        }

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = require_header(
            headers,
            SIGNATURE_HEADER,
            "Sentry signs every integration webhook with the integration's client secret",
        )
        check_signature(
            given.lower(),
            sign(secret, body),
            SIGNATURE_HEADER,
            cause="the endpoint's secret must be the integration's client secret",
        )
        # Sentry may send fractional seconds.
        check_timestamp(header(headers, TIMESTAMP_HEADER), TIMESTAMP_HEADER, fractional=True)

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        value = header(headers, DELIVERY_HEADER)
        if value:
            return storable(value, MAX_DELIVERY_ID, distinct=True)
        # No Request-ID: the body names the delivery, so a retry of the same body dedupes.
        # The interface hands over the parsed payload, not the bytes; serialised compact,
        # the way Sentry serialises what it signs, it gives back the body Sentry sent.
        return "sha256:" + hashlib.sha256(_compact(payload)).hexdigest()

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        return event_and_action(header(headers, RESOURCE_HEADER) or "unknown", payload)

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        data = mapping(payload.get("data"))
        resource, _, action = event_type.partition(".")
        summary = _summary(resource, action, payload, data)
        if resource == "metric_alert":
            alert = mapping(data.get("metric_alert"))
            alert_id = text_of(alert.get("id"))
            title = text_of(data.get("description_title")) or text_of(
                alert.get("title"), "Sentry metric alert"
            )
            return CaseFacts(
                dedup_key=f"metric_alert:{alert_id}" if alert_id else None,
                title=title,
                severity=METRIC_ALERT_SEVERITY.get(action, "info"),
                source_url=text_of(data.get("web_url")) or None,
                summary=summary,
            )
        # issue: data.issue; error: data.error; event_alert: data.event; comment: data.
        subject = (
            mapping(data.get("issue")) or mapping(data.get("error")) or mapping(data.get("event"))
        )
        issue_id = (
            text_of(subject.get("id")) if resource == "issue" else text_of(subject.get("issue_id"))
        ) or text_of(data.get("issue_id"))
        title = text_of(subject.get("title"))
        culprit = text_of(subject.get("culprit"))
        if title and culprit:
            title = f"{title} — {culprit}"
        return CaseFacts(
            # The Sentry issue id: errors, alerts and comments about an issue land on its case.
            dedup_key=issue_id or None,
            title=title or (f"Sentry issue {issue_id}" if issue_id else f"Sentry {event_type}"),
            severity=LEVEL_SEVERITY.get(text_of(subject.get("level")).lower(), "info"),
            source_url=text_of(subject.get("web_url"))
            or text_of(subject.get("permalink"))
            or text_of(subject.get("issue_url"))
            or None,
            summary=summary,
        )

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The error (type and message) as the body; the culprit, level, project, platform
        and how often it happened. Metric alerts: the alert's description."""
        data = mapping(mapping(payload).get("data"))
        if event_type.startswith("metric_alert"):
            alert = mapping(data.get("metric_alert"))
            return Incident(
                body_markdown=text_of(data.get("description_text")),
                fields=incident_fields(
                    ("Alert", text_of(data.get("description_title")) or alert.get("title")),
                    ("Status", event_type.partition(".")[2]),
                ),
                level=event_type.partition(".")[2],
            )
        subject = (
            mapping(data.get("issue")) or mapping(data.get("error")) or mapping(data.get("event"))
        )
        metadata = mapping(subject.get("metadata"))
        error = ": ".join(
            part for part in (text_of(metadata.get("type")), text_of(metadata.get("value"))) if part
        )
        project = mapping(subject.get("project"))
        return Incident(
            body_markdown=f"`{error}`" if error and "`" not in error else error,
            fields=incident_fields(
                ("Culprit", subject.get("culprit")),
                ("Level", subject.get("level")),
                ("Project", text_of(project.get("name")) or text_of(project.get("slug"))),
                ("Platform", subject.get("platform")),
                ("Events", subject.get("count")),
                ("Users", subject.get("userCount")),
                ("File", metadata.get("filename")),
            ),
            level=text_of(subject.get("level")),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """``{"issue_id", "url"?}`` of the Sentry issue (metric alerts have none)."""
        if event_type.startswith("metric_alert"):
            return None
        data = mapping(mapping(payload).get("data"))
        subject = (
            mapping(data.get("issue")) or mapping(data.get("error")) or mapping(data.get("event"))
        )
        resource = event_type.partition(".")[0]
        issue_id = (
            text_of(subject.get("id")) if resource == "issue" else text_of(subject.get("issue_id"))
        ) or text_of(data.get("issue_id"))
        if not issue_id:
            return None
        target = {"issue_id": issue_id}
        if url := http_url(subject.get("web_url")) or http_url(subject.get("permalink")):
            target["url"] = url
        return target

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """Sentry API: ``POST /api/0/issues/{issue_id}/comments/`` with ``{"text"}`` and a
        bearer token (an internal integration's or a user auth token with ``event:write``)."""
        issue_id = target.get("issue_id")
        if not isinstance(issue_id, str) or not issue_id:
            raise ReplyError("the case names no Sentry issue", permanent=True)
        response = send(
            "POST",
            f"{settings.api_url}/issues/{quote(issue_id, safe='')}/comments/",
            headers=bearer(settings.token),
            json={"text": text},
        )
        return ReplyResult(
            response.status_code, http_url(target.get("url")), answer_excerpt(response)
        )


def _compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _summary(resource: str, action: str, payload: dict, data: dict) -> str:
    actor = mapping(payload.get("actor"))
    who = text_of(actor.get("name"), "Sentry")
    if resource == "comment":
        comment = text_of(data.get("comment"))
        return remark(who, "commented", comment) if comment else f"{who} {action} a comment"
    if resource == "event_alert":
        rule = text_of(data.get("triggered_rule"))
        return f"Alert rule {rule!r} fired" if rule else "An alert rule fired"
    if resource == "metric_alert":
        return f"Metric alert is {action or 'updated'}"
    if resource == "issue" and action == "assigned":
        assignee = mapping(mapping(data.get("issue")).get("assignedTo"))
        name = text_of(assignee.get("name")) or text_of(assignee.get("email"))
        return f"{who} assigned {name}" if name else f"{who} assigned the issue"
    return f"{who} {action or 'sent'} the {resource.replace('_', ' ')}"


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="sentry.open",
        trigger=("issue.created", "issue.unresolved"),
        action="open_case",
        priority=10,
        description="A new issue, or one that came back (unresolved): open its case "
        "(or reopen it).",
    ),
    Command(
        name="sentry.close",
        trigger=("issue.resolved",),
        action="close_case",
        priority=10,
        description="The issue resolved in Sentry: close its case (reason auto).",
    ),
    Command(
        name="sentry.alert",
        trigger=("event_alert.triggered",),
        action="open_case",
        priority=20,
        description="An issue alert rule fired: open the issue's case (or reopen it).",
    ),
    Command(
        name="sentry.metric_alert.open",
        trigger=("metric_alert.critical", "metric_alert.warning"),
        action="open_case",
        priority=20,
        description="A metric alert went critical or warning: open its case.",
    ),
    Command(
        name="sentry.metric_alert.resolved",
        trigger=("metric_alert.resolved",),
        action="close_case",
        priority=20,
        description="A metric alert resolved: close its case (reason auto).",
    ),
    Command(
        name="sentry.activity",
        trigger=("issue.assigned", "issue.ignored", "issue.archived", "comment.*"),
        action="update_case",
        priority=50,
        description="Assignment, ignore/archive and comments: add to the issue's case timeline.",
    ),
]
