"""Slack Events API: ``X-Slack-Signature``, ``X-Slack-Request-Timestamp``, body ``event_id``.

Slack docs, "Verifying requests from Slack": the signature is
``v0=<hex HMAC-SHA256(signing secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw body)>``;
refuse a request whose timestamp is more than five minutes from now (replay protection), and
compare in constant time. The timestamp is checked first (as Slack recommends), then the
signature.

Slack docs, "Events API": a body is either ``url_verification`` (answer its ``challenge``; the
route only asks ``immediate_answer`` after the signature passed, so only signed requests get
the challenge back), ``app_rate_limited`` (a notice), or ``event_callback`` with an
``event_id`` (the same on Slack's retries, which add ``X-Slack-Retry-Num``) and the ``event``
itself. The event type is ``event.type`` (``app_mention``, ``reaction_added``, ``message``).
An ``event_callback`` in the older wrapper without ``event_id`` (Slack's own
python-slack-events-api examples) is still accepted when its event has an ``event_ts``: its
delivery id is then derived from the body, which Slack's retries resend unchanged.

A case is a conversation: the thread (or the message) the event is about, keyed
``{team_id}:{channel}:{thread ts}``. ``reaction_added`` carries no ``thread_ts``, only the
reacted message's ``item.ts``: a reaction closes the case of a thread when it is put on the
thread's first message (the one that mentioned the app, usually).

Built-in commands, kept quiet on purpose:
- ``app_mention`` → ``open_case``: someone asked the app for help (reopens a closed thread).
- ``reaction_added`` with ``white_check_mark`` / ``heavy_check_mark`` → ``close_case`` (auto).
- Everything else (other reactions, plain ``message`` events) matches no built-in command and
  is recorded only: ``update_case`` would open a case when there is none, so every emoji and
  every chat line in every channel the app sits in would become a case. Dynamic commands can
  opt in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from app import clock
from app.webhooks.commands import Command, Condition
from app.webhooks.providers.base import (
    CaseFacts,
    PayloadError,
    Provider,
    VerificationError,
    constant_time_equal,
    hmac_sha256_hex,
    mapping,
    text_of,
)

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
#: Slack docs: "more than five minutes from local time" → possibly a replay attack.
TOLERANCE_SECONDS = 300
#: Body types that carry no ``event_id``; their delivery id is derived from the request.
UNIDENTIFIED_TYPES = ("url_verification", "app_rate_limited")
DONE_REACTIONS = ["white_check_mark", "heavy_check_mark"]
TITLE_EXCERPT = 80
SUMMARY_EXCERPT = 280


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
    return "v0=" + hmac_sha256_hex(secret, b"v0:" + timestamp.encode() + b":" + body)


class Slack(Provider):
    name = "slack"

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = _header(headers, SIGNATURE_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        for name, value in ((SIGNATURE_HEADER, given), (TIMESTAMP_HEADER, timestamp)):
            if not value:
                raise VerificationError(
                    "missing_header",
                    f"{name} header is missing; Slack signs every request with it (check "
                    "that the Request URL belongs to a Slack app with this signing secret)",
                )
        _check_freshness(timestamp)
        if not constant_time_equal(given, sign(secret, timestamp, body)):
            raise VerificationError(
                "bad_signature",
                f"{SIGNATURE_HEADER} does not match the body and {TIMESTAMP_HEADER}: the "
                "signing secret differs, or the body was changed on the way",
            )

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        payload = mapping(payload)
        event_id = text_of(payload.get("event_id"))
        if event_id:
            return event_id[:200]
        kind = text_of(payload.get("type"))
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        if kind in UNIDENTIFIED_TYPES:
            # No id from Slack and never processed: include the request timestamp so that a
            # retry of the same challenge is answered again rather than taken as a duplicate.
            signed = f"{_header(headers, TIMESTAMP_HEADER)}:{canonical}"
            return f"{kind}:{hashlib.sha256(signed.encode()).hexdigest()}"
        event = mapping(payload.get("event"))
        if kind == "event_callback" and text_of(event.get("event_ts") or event.get("ts")):
            # The older wrapper (before event_id existed) still names one event by its
            # event_ts; Slack's retries resend the same body, so its hash is stable.
            return f"event_callback:{hashlib.sha256(canonical.encode()).hexdigest()}"
        raise PayloadError(
            "body has no event_id; Slack sends one with every event_callback "
            "(and an event with its event_ts)"
        )

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        payload = mapping(payload)
        kind = text_of(payload.get("type"), "unknown")
        if kind == "event_callback":
            return text_of(mapping(payload.get("event")).get("type"), "unknown")[:200]
        return kind[:200]

    def immediate_answer(self, event_type: str, payload: dict) -> dict | None:
        if event_type != "url_verification":
            return None
        return {"challenge": text_of(mapping(payload).get("challenge"))}

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        event = mapping(payload.get("event"))
        item = mapping(event.get("item"))
        team = text_of(payload.get("team_id")) or text_of(event.get("team"), "unknown team")
        channel = text_of(event.get("channel")) or text_of(item.get("channel"))
        thread = (
            text_of(event.get("thread_ts")) or text_of(item.get("ts")) or text_of(event.get("ts"))
        )
        where = channel or "Slack"
        who = text_of(event.get("user"), "someone")
        text = _one_line(event.get("text"))
        reaction = text_of(event.get("reaction"))
        if event_type.startswith("reaction_") and reaction:
            verb = "removed" if event_type == "reaction_removed" else "reacted"
            title = f"Slack: :{reaction}: on a message in {where}"
            summary = f"{who} {verb} :{reaction}:"
        elif text:
            title = f"Slack: {_excerpt(text, TITLE_EXCERPT)} in {where}"
            said = "mentioned the app" if event_type == "app_mention" else "wrote"
            summary = f"{who} {said}: {_excerpt(text, SUMMARY_EXCERPT)}"
        else:
            title = f"Slack: {event_type.replace('_', ' ')} in {where}"
            summary = f"{who}: {event_type.replace('_', ' ')}"
        return CaseFacts(
            dedup_key=f"{team}:{channel}:{thread}"[:500] if channel and thread else None,
            title=title[:300],
            severity="info",
            source_url=_channel_link(team, channel),
            summary=summary,
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS


def _header(headers: Mapping[str, str], name: str) -> str:
    """Header ``name``, whatever its case (the route's headers already ignore case)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) else ""


def _check_freshness(timestamp: str) -> None:
    try:
        sent = int(timestamp)
    except ValueError:
        raise VerificationError(
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} {timestamp[:40]!r} is not a Unix time in whole seconds",
        ) from None
    skew = sent - clock.now().timestamp()
    if abs(skew) > TOLERANCE_SECONDS:
        direction = "in the future" if skew > 0 else "old"
        raise VerificationError(
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {direction} (skew {skew:+.0f} s; "
            f"allowed ±{TOLERANCE_SECONDS} s): a replayed request, or a clock out of sync",
        )


def _one_line(value: Any) -> str:
    return " ".join(text_of(value).split())


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _channel_link(team: str, channel: str) -> str | None:
    # Slack docs, "Deep linking into Slack": app_redirect opens a channel by id in a team.
    if not channel:
        return None
    query = {"channel": channel}
    if team and team != "unknown team":
        query["team"] = team
    return "https://slack.com/app_redirect?" + urlencode(query)


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="slack.mention",
        trigger=("app_mention",),
        action="open_case",
        priority=10,
        description="Someone mentioned the app: open a case for the thread (or reopen it).",
    ),
    Command(
        name="slack.done",
        trigger=("reaction_added",),
        conditions=(Condition("event.reaction", "in", DONE_REACTIONS),),
        action="close_case",
        priority=10,
        description="A check-mark reaction on the thread's message: close its case (auto).",
    ),
]
