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
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from app.text import storable
from app.webhooks.commands import Command, Condition
from app.webhooks.providers.base import (
    MAX_DELIVERY_ID,
    TRIGGER,
    CaseFacts,
    Incident,
    Mention,
    PayloadError,
    Provider,
    ReplyError,
    ReplyResult,
    ReplySettings,
    answer_excerpt,
    answer_json,
    bearer,
    check_signature,
    check_timestamp,
    excerpt,
    header,
    hmac_sha256_hex,
    incident_fields,
    mapping,
    one_line,
    require_header,
    send,
    text_of,
)

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
#: What a missing header's refusal says to check.
MISSING_HINT = (
    "Slack signs every request with it (check that the Request URL belongs to a Slack app "
    "with this signing secret)"
)
#: Body types that carry no ``event_id``; their delivery id is derived from the request.
UNIDENTIFIED_TYPES = ("url_verification", "app_rate_limited")
DONE_REACTIONS = ["white_check_mark", "heavy_check_mark"]
#: The app's address at the start of an ``app_mention`` text: ``<@U0LAN0Z89>`` (Slack docs,
#: "Formatting text": mentioning users).
_ADDRESS = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s:,]*")
TITLE_EXCERPT = 80
SUMMARY_EXCERPT = 280


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
    return "v0=" + hmac_sha256_hex(secret, b"v0:" + timestamp.encode() + b":" + body)


#: ``chat.postMessage`` errors that trying again cannot fix (Slack docs, "chat.postMessage":
#: errors); the others (``ratelimited``, ``internal_error``, ...) are retried.
PERMANENT_ERRORS = (
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
    "account_inactive", "token_revoked", "token_expired", "missing_scope", "no_permission",
    "thread_reply_not_found", "msg_too_long", "no_text", "restricted_action",
)  # fmt: skip


class Slack(Provider):
    name = "slack"
    display_name = "Slack"
    secret_hint = "the app's Signing Secret"
    secret_from_provider = (
        "Slack makes the signing secret: paste it from the app's Basic Information page"
    )
    default_api_url = "https://slack.com/api"

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        # Slack's delivery id is the body's event_id: nothing to add for it.
        return {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(secret, str(now), body)}

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = require_header(headers, SIGNATURE_HEADER, MISSING_HINT)
        timestamp = require_header(headers, TIMESTAMP_HEADER, MISSING_HINT)
        # Slack docs: "more than five minutes from local time" → possibly a replay attack.
        check_timestamp(timestamp, TIMESTAMP_HEADER)
        check_signature(
            given,
            sign(secret, timestamp, body),
            SIGNATURE_HEADER,
            signed=f"the body and {TIMESTAMP_HEADER}",
            cause="the signing secret differs",
        )

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        payload = mapping(payload)
        event_id = text_of(payload.get("event_id"))
        if event_id:
            return storable(event_id, MAX_DELIVERY_ID, distinct=True)
        kind = text_of(payload.get("type"))
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        if kind in UNIDENTIFIED_TYPES:
            # No id from Slack and never processed: include the request timestamp so that a
            # retry of the same challenge is answered again rather than taken as a duplicate.
            signed = f"{header(headers, TIMESTAMP_HEADER)}:{canonical}"
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
        text = one_line(event.get("text"))
        reaction = text_of(event.get("reaction"))
        if event_type.startswith("reaction_") and reaction:
            verb = "removed" if event_type == "reaction_removed" else "reacted"
            title = f"Slack: :{reaction}: on a message in {where}"
            summary = f"{who} {verb} :{reaction}:"
        elif text:
            title = f"Slack: {excerpt(text, TITLE_EXCERPT)} in {where}"
            said = "mentioned the app" if event_type == "app_mention" else "wrote"
            summary = f"{who} {said}: {excerpt(text, SUMMARY_EXCERPT)}"
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

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The message as written (Slack's mrkdwn is close enough to Markdown to read), who
        wrote it and where; for a reaction, the reaction on which message."""
        payload = mapping(payload)
        event = mapping(payload.get("event"))
        item = mapping(event.get("item"))
        reaction = text_of(event.get("reaction"))
        return Incident(
            body_markdown=text_of(event.get("text")),
            fields=incident_fields(
                ("From", event.get("user")),
                ("Channel", text_of(event.get("channel")) or item.get("channel")),
                ("Reaction", f":{reaction}:" if reaction else ""),
                ("On a message by", event.get("item_user")),
                ("Thread", text_of(event.get("thread_ts")) or item.get("ts")),
            ),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """``{"team", "channel", "thread_ts"}``: the conversation the case is about (the
        thread's first message for a reaction)."""
        payload = mapping(payload)
        event = mapping(payload.get("event"))
        item = mapping(event.get("item"))
        channel = text_of(event.get("channel")) or text_of(item.get("channel"))
        thread = (
            text_of(event.get("thread_ts")) or text_of(item.get("ts")) or text_of(event.get("ts"))
        )
        if not channel or not thread:
            return None
        team = text_of(payload.get("team_id")) or text_of(event.get("team"))
        target: dict[str, Any] = {"team": team, "channel": channel, "thread_ts": thread}
        if event_type == "app_mention" and text_of(event.get("ts")):
            target[TRIGGER] = {"ts": text_of(event.get("ts"))}
        return target

    def mention(self, event_type: str, payload: Any) -> Mention | None:
        """An ``app_mention``: the message addresses the app by its leading ``<@U…>``, so
        the command word is what follows it (``addressed``); the author is ``event.user``.
        Slack events say nothing of roles: only the endpoint's ``mention_users`` (user ids)
        are trusted. A bot when the event has a ``bot_id`` or the ``bot_message`` subtype
        (Casehook's own replies are posted with a bot token, so they carry one)."""
        if event_type != "app_mention":
            return None
        event = mapping(mapping(payload).get("event"))
        text = text_of(event.get("text"))
        address = _ADDRESS.search(text)
        return Mention(
            text=text,
            author=text_of(event.get("user")),
            is_bot=bool(event.get("bot_id")) or event.get("subtype") == "bot_message",
            addressed=text[address.end() :] if address else None,
        )

    def acknowledge(self, target: Mapping[str, Any], settings: ReplySettings) -> ReplyResult | None:
        """Slack docs, "reactions.add": ``{"channel", "timestamp", "name": "eyes"}`` on the
        message that mentioned the app; ``already_reacted`` counts as done."""
        ts, channel = mapping(target.get(TRIGGER)).get("ts"), target.get("channel")
        if not isinstance(ts, str) or not isinstance(channel, str):
            return None
        response = send(
            "POST",
            f"{settings.api_url}/reactions.add",
            headers={**bearer(settings.token), "Content-Type": "application/json; charset=utf-8"},
            json={"channel": channel, "timestamp": ts, "name": "eyes"},
            ok=(200,),
        )
        answer = answer_json(response)
        error = text_of(answer.get("error"))
        if answer.get("ok") is not True and error != "already_reacted":
            raise ReplyError(
                f"reactions.add answered ok: false ({error or 'no ok in the answer'})",
                status_code=response.status_code,
                permanent=error in PERMANENT_ERRORS,
            )
        return ReplyResult(response.status_code, None, answer_excerpt(response))

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """Slack docs, "chat.postMessage": ``POST /api/chat.postMessage`` with a bot token
        (``Authorization: Bearer xoxb-…``) and ``{"channel", "thread_ts", "text"}`` as JSON.
        Slack answers 200 with ``{"ok": false, "error"}`` when it refused: a failure, retried
        unless the error is one of ``PERMANENT_ERRORS``; 429 carries ``Retry-After``."""
        channel, thread = target.get("channel"), target.get("thread_ts")
        if not isinstance(channel, str) or not isinstance(thread, str):
            raise ReplyError("the case names no Slack conversation", permanent=True)
        response = send(
            "POST",
            f"{settings.api_url}/chat.postMessage",
            headers={**bearer(settings.token), "Content-Type": "application/json; charset=utf-8"},
            json={"channel": channel, "thread_ts": thread, "text": text},
            ok=(200,),
        )
        answer = answer_json(response)
        if answer.get("ok") is not True:
            error = text_of(answer.get("error"), "no ok in the answer")
            raise ReplyError(
                f"chat.postMessage answered ok: false ({error}): {answer_excerpt(response)}",
                status_code=response.status_code,
                permanent=error in PERMANENT_ERRORS,
            )
        return ReplyResult(response.status_code, None, answer_excerpt(response))


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
