"""Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

Standard Webhooks specification (standardwebhooks.com, "Verifying webhook authenticity"): the
signature is ``v1,<base64 HMAC-SHA256(base64-decoded secret, "{id}.{timestamp}.{body}")>``;
the secret is ``whsec_`` + base64; ``webhook-signature`` may list several space-separated
signatures (secret rotation), any one of which may match; refuse timestamps more than five
minutes from now. ``webhook-id`` is the same on every retry of a message.

The signature comes from the ``standardwebhooks`` package (``Webhook.sign``). Its
``Webhook.verify`` reads the system clock and takes no time, so it cannot follow
``app.clock`` (tests, ``flask webhooks verify --at``): this module checks the timestamp
against ``app.clock.now()`` itself, then asks the package for the expected signature of that
id, timestamp and body and compares it, in constant time, with each ``v1`` signature sent.

The body is free-form; by convention (the specification's examples) it is
``{"type": "invoice.paid", "timestamp": ..., "data": {...}}``:
- event type: body ``type`` (``unknown`` when absent);
- dedup key: body ``dedup_key`` when the sender sets one (it knows best), else ``data.id``,
  else none (each delivery stands alone);
- title: body ``title``, else ``data.title``, else ``data.name``, else the event type (with
  ``data.id``); severity: body or ``data`` ``severity`` (critical/error/warning/info and the
  usual synonyms); source URL: body or ``data`` ``url``/``html_url`` (http and https only).

Built-in commands, by the action at the end of the event type: ``*.created``, ``*.opened``,
``*.triggered``, ``*.firing`` → ``open_case``; ``*.resolved``, ``*.closed`` → ``close_case``
(auto); ``*.updated`` → ``update_case``. Anything else is recorded only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from app.webhooks.commands import Command
from app.webhooks.providers.base import (
    CaseFacts,
    Incident,
    Provider,
    VerificationError,
    check_timestamp,
    delivery_header,
    http_url,
    incident_fields,
    mapping,
    one_line,
    require_header,
    text_of,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SEVERITIES = {
    "critical": "critical",
    "fatal": "critical",
    "error": "error",
    "high": "error",
    "major": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "minor": "warning",
}


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) a sender would send for ``body``."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


class Standard(Provider):
    name = "standard"
    display_name = "a Standard Webhooks sender"
    secret_hint = "the sender's whsec_… secret"

    def check_secret(self, secret: str) -> str | None:
        # The package itself accepts almost anything (it decodes base64 loosely); a secret
        # that is not strict base64 is a paste gone wrong, and no sender would match it.
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            return (
                "a Standard Webhooks secret is whsec_ followed by base64 (as the sender shows "
                "it); leave it empty to generate one"
            )
        return None

    def generate_secret(self) -> str:
        """``whsec_`` + base64 of 24 random bytes: what its senders decode."""
        return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        msg_id = "msg_" + delivery.replace("-", "")
        return {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: sign(secret, msg_id, now, body),
        }

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        hint = (
            f"a Standard Webhooks sender sends {ID_HEADER}, {TIMESTAMP_HEADER} and "
            f"{SIGNATURE_HEADER} with every message"
        )
        values = {
            name: require_header(headers, name, hint)
            for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
        }
        # The specification's (and the package's) tolerance: five minutes either way.
        timestamp = check_timestamp(values[TIMESTAMP_HEADER], TIMESTAMP_HEADER)
        try:
            webhook = Webhook(secret)
        except Exception as exc:  # binascii.Error, EmptyWebhookSecretError, RuntimeError
            raise VerificationError(
                "bad_signature",
                "this endpoint's secret is not a Standard Webhooks secret (whsec_ followed by "
                f"base64: {exc.__class__.__name__}), so no signature can match; set the "
                "sender's secret on the endpoint",
            ) from None
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise VerificationError(
                "bad_signature", "body is not UTF-8 text, so it cannot match its signature"
            ) from None
        expected = _decoded(webhook.sign(values[ID_HEADER], timestamp, text).partition(",")[2])
        if not any(
            hmac.compare_digest(_decoded(signature), expected)
            for version, signature in _signatures(values[SIGNATURE_HEADER])
            if version == "v1"
        ):
            raise VerificationError(
                "bad_signature",
                f"no v1 signature in {SIGNATURE_HEADER} matches {ID_HEADER}, "
                f"{TIMESTAMP_HEADER} and the body: the secret differs, or the body was "
                "changed on the way",
            )

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        return delivery_header(headers, ID_HEADER)

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        return text_of(mapping(payload).get("type"), "unknown")[:200]

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        data = mapping(payload.get("data"))
        object_id = text_of(data.get("id"))
        dedup_key = text_of(payload.get("dedup_key")) or object_id or None
        title = (
            text_of(payload.get("title"))
            or text_of(data.get("title"))
            or text_of(data.get("name"))
            or (f"{event_type} ({object_id})" if object_id else event_type)
        )
        severity_name = text_of(payload.get("severity")) or text_of(data.get("severity"))
        return CaseFacts(
            dedup_key=dedup_key[:500] if dedup_key else None,
            title=one_line(title)[:300],
            severity=SEVERITIES.get(severity_name.lower(), "info"),
            source_url=http_url(payload.get("url"))
            or http_url(payload.get("html_url"))
            or http_url(data.get("url"))
            or http_url(data.get("html_url")),
            summary=event_type + (f" ({object_id})" if object_id else ""),
        )

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The sender's ``description`` or ``message`` (top level or in ``data``) as the body,
        and the scalar fields of ``data`` as they are (a generic sender's names are its own)."""
        payload = mapping(payload)
        data = mapping(payload.get("data"))
        body = next(
            (
                text
                for source in (payload, data)
                for key in ("description", "message", "text")
                if (text := text_of(source.get(key)))
            ),
            "",
        )
        scalars = [
            (key.replace("_", " ").capitalize(), value)
            for key, value in list(data.items())[:20]
            if isinstance(value, str | int | float)
            and not isinstance(value, bool)
            and key not in ("description", "message", "text")
        ]
        return Incident(
            body_markdown=body,
            fields=incident_fields(("Severity", payload.get("severity")), *scalars),
            level=text_of(payload.get("severity")) or text_of(data.get("severity")),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS


def _signatures(header: str) -> list[tuple[str, str]]:
    """``[(version, signature)]`` from ``v1,abc= v1,def=``; malformed entries are skipped."""
    pairs = []
    for entry in header.split():
        version, comma, signature = entry.partition(",")
        if comma and signature:
            pairs.append((version, signature))
    return pairs


def _decoded(signature: str) -> bytes:
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return b""


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="standard.open",
        trigger=("*.created", "*.opened", "*.triggered", "*.firing"),
        action="open_case",
        priority=10,
        description="Something was created, opened or triggered: open its case (or reopen it).",
    ),
    Command(
        name="standard.close",
        trigger=("*.resolved", "*.closed"),
        action="close_case",
        priority=10,
        description="Something was resolved or closed: close its case (reason auto).",
    ),
    Command(
        name="standard.update",
        trigger=("*.updated",),
        action="update_case",
        priority=50,
        description="Something changed: add it to its case's timeline.",
    ),
]
