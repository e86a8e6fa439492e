"""PagerDuty v3 webhooks: ``X-PagerDuty-Signature``, ``X-Webhook-Id``, ``event.event_type``.

PagerDuty developer docs, "Verifying Signatures" (webhooks v3): ``X-PagerDuty-Signature``
holds one or more comma-separated ``v1=<hex HMAC-SHA256(secret, raw body)>`` values; while a
subscription's secret is being rotated it carries one per secret, and a delivery is authentic
when any one matches (go-pagerduty ``webhookv3.VerifySignature`` does the same and ignores
entries of other versions). ``X-Webhook-Id`` is the same on every retry of one delivery; the
body's ``event.id`` names the event. "Webhook Payload": ``event.event_type`` is
``incident.triggered``, ``incident.acknowledged``, ``incident.resolved``, ... or
``pagey.ping`` for the test delivery; ``event.data`` is the incident (or, for annotations,
responders and status updates, an object whose ``incident`` is a reference to it).

Severity (PagerDuty has urgency and account-defined priorities, not severities): urgency
``high`` is ``error`` and ``low`` is ``warning``; a priority named ``P1`` (PagerDuty's
default top priority) makes it ``critical``; unknown urgency is ``error``, because
PagerDuty's default urgency is high.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from app.text import storable
from app.webhooks.commands import Command
from app.webhooks.providers.base import (
    MAX_DELIVERY_ID,
    CaseFacts,
    Incident,
    PayloadError,
    Provider,
    ReplyError,
    ReplyResult,
    ReplySettings,
    VerificationError,
    answer_excerpt,
    constant_time_equal,
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

SIGNATURE_HEADER = "X-PagerDuty-Signature"
DELIVERY_HEADER = "X-Webhook-Id"
SIGNATURE_VERSION = "v1="
#: Signatures looked at in one header: a rotation has two or three, never hundreds.
MAX_SIGNATURES = 10

URGENCY_SEVERITY = {"high": "error", "low": "warning"}
CRITICAL_PRIORITIES = ("P1",)


def sign(secret: str, body: bytes) -> str:
    """One ``v1=<hex>`` value, as PagerDuty would send it for ``body`` under ``secret``."""
    return SIGNATURE_VERSION + hmac_sha256_hex(secret, body)


class PagerDuty(Provider):
    name = "pagerduty"
    display_name = "PagerDuty"
    secret_hint = "the v3 webhook subscription's signing secret"
    secret_from_provider = (
        "PagerDuty makes the signing secret when the webhook subscription is created: paste it here"
    )
    monitoring = True
    default_api_url = "https://api.pagerduty.com"
    reply_options = {"from": "the email of the PagerDuty user the notes are added as (required)"}
    ping_event = "pagey.ping"

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        return {DELIVERY_HEADER: delivery, SIGNATURE_HEADER: sign(secret, body)}

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = require_header(
            headers, SIGNATURE_HEADER, "PagerDuty v3 webhook subscriptions sign every delivery"
        )
        candidates = [
            value.strip()
            for value in given.split(",")
            if value.strip().startswith(SIGNATURE_VERSION)
        ][:MAX_SIGNATURES]
        if not candidates:
            raise VerificationError(
                "bad_signature",
                f"{SIGNATURE_HEADER} has no {SIGNATURE_VERSION}<hex> signature",
            )
        expected = sign(secret, body)
        # Compare with every candidate, not stopping at the first match: the time taken does
        # not say which one matched.
        matched = [constant_time_equal(value.lower(), expected) for value in candidates]
        if not any(matched):
            count = len(candidates)
            raise VerificationError(
                "bad_signature",
                f"{SIGNATURE_HEADER}: none of the {count} {SIGNATURE_VERSION} signature"
                f"{'s' if count > 1 else ''} matches the body: the secret differs, or the "
                "body was changed on the way",
            )

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        value = header(headers, DELIVERY_HEADER) or text_of(
            mapping(mapping(payload).get("event")).get("id")
        )
        if not value:
            raise PayloadError(f"{DELIVERY_HEADER} header and the body's event.id are missing")
        return storable(value, MAX_DELIVERY_ID, distinct=True)

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        event = mapping(mapping(payload).get("event"))
        return text_of(event.get("event_type"), "unknown")

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        event = mapping(mapping(payload).get("event"))
        data = mapping(event.get("data"))
        # The incident itself, or (annotations, responders, status updates) a reference.
        incident = (
            data if text_of(data.get("type")) == "incident" else mapping(data.get("incident"))
        )
        incident_id = text_of(incident.get("id"))
        number = text_of(incident.get("number"))
        title = text_of(incident.get("title")) or text_of(incident.get("summary"))
        return CaseFacts(
            # The incident id: every event about one incident lands on its case.
            dedup_key=incident_id or None,
            title=title
            or (f"PagerDuty incident {number or incident_id}" if incident_id else event_type),
            severity=_severity(incident),
            source_url=text_of(incident.get("html_url")) or None,
            summary=_summary(event_type, event, data, incident),
        )

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The incident's urgency, service (linked), status, priority, escalation policy and
        assignees; the body is its description or an annotation's text when there is one."""
        data = mapping(mapping(mapping(payload).get("event")).get("data"))
        incident = (
            data if text_of(data.get("type")) == "incident" else mapping(data.get("incident"))
        )
        service = mapping(incident.get("service"))
        policy = mapping(incident.get("escalation_policy"))
        assignees = incident.get("assignees") if isinstance(incident.get("assignees"), list) else []
        return Incident(
            body_markdown=text_of(incident.get("description")) or text_of(data.get("content")),
            fields=incident_fields(
                ("Urgency", incident.get("urgency")),
                ("Service", service.get("summary"), service.get("html_url")),
                ("Status", incident.get("status")),
                ("Priority", mapping(incident.get("priority")).get("summary")),
                ("Escalation policy", policy.get("summary"), policy.get("html_url")),
                (
                    "Assigned to",
                    ", ".join(
                        text_of(mapping(a).get("summary"))
                        for a in assignees
                        if mapping(a).get("summary")
                    ),
                ),
                ("Incident", incident.get("number"), incident.get("html_url")),
            ),
            level=text_of(incident.get("urgency")),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """``{"incident_id", "url"?}`` of the incident."""
        data = mapping(mapping(mapping(payload).get("event")).get("data"))
        incident = (
            data if text_of(data.get("type")) == "incident" else mapping(data.get("incident"))
        )
        incident_id = text_of(incident.get("id"))
        if not incident_id:
            return None
        target = {"incident_id": incident_id}
        if url := http_url(incident.get("html_url")):
            target["url"] = url
        return target

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """PagerDuty REST API v2, "Create a note on an incident": ``POST
        /incidents/{id}/notes`` with ``{"note": {"content"}}``, ``Authorization: Token
        token=<key>`` and ``From: <email of a PagerDuty user>``."""
        incident_id = target.get("incident_id")
        if not isinstance(incident_id, str) or not incident_id:
            raise ReplyError("the case names no PagerDuty incident", permanent=True)
        sender = str(settings.options.get("from") or "")
        if not sender:
            raise ReplyError(
                "PagerDuty needs the email of a user to add notes as: set the endpoint's "
                "reply option from",
                permanent=True,
            )
        response = send(
            "POST",
            f"{settings.api_url}/incidents/{quote(incident_id, safe='')}/notes",
            headers={
                "Authorization": f"Token token={settings.token}",
                "From": sender,
                "Accept": "application/vnd.pagerduty+json;version=2",
            },
            json={"note": {"content": text}},
        )
        return ReplyResult(
            response.status_code, http_url(target.get("url")), answer_excerpt(response)
        )


def _severity(incident: dict) -> str:
    priority = text_of(mapping(incident.get("priority")).get("summary"))
    if priority.upper() in CRITICAL_PRIORITIES:
        return "critical"
    return URGENCY_SEVERITY.get(text_of(incident.get("urgency")).lower(), "error")


def _summary(event_type: str, event: dict, data: dict, incident: dict) -> str:
    who = text_of(mapping(event.get("agent")).get("summary"), "PagerDuty")
    action = event_type.split(".", 1)[-1].replace("_", " ").replace(".", " ")
    if event_type == "incident.annotated":
        return remark(who, "added a note", text_of(data.get("content")))
    if event_type == "incident.priority_updated":
        priority = text_of(mapping(incident.get("priority")).get("summary"))
        return (
            f"{who} set the priority to {priority}" if priority else f"{who} removed the priority"
        )
    if event_type == "incident.status_update_published":
        message = text_of(data.get("message"))
        return f"{who} published a status update: {message[:280]}" if message else action
    return f"{who}: incident {action}"


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="pagerduty.open",
        trigger=("incident.triggered", "incident.reopened"),
        action="open_case",
        priority=10,
        description="An incident triggered or reopened: open its case (or reopen it).",
    ),
    Command(
        name="pagerduty.close",
        trigger=("incident.resolved",),
        action="close_case",
        priority=10,
        description="The incident resolved in PagerDuty: close its case (reason auto).",
    ),
    Command(
        name="pagerduty.activity",
        trigger=("incident.*",),
        action="update_case",
        priority=50,
        description="Acknowledged, escalated, reassigned, priority changes, notes and other "
        "incident activity: add to the case's timeline.",
    ),
]
