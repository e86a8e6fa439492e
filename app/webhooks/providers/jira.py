"""Jira: ``X-Hub-Signature``, ``X-Atlassian-Webhook-Identifier``, body ``webhookEvent``.

Atlassian docs, "Webhooks" (Jira Cloud platform REST API, and Jira Server/Data Center
"Managing webhooks"): an admin webhook with a secret signs each delivery with
``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``;
``X-Atlassian-Webhook-Identifier`` is the same on every retry of one delivery. The body's
``webhookEvent`` names what happened (``jira:issue_created``, ``jira:issue_updated``,
``jira:issue_deleted``, ``comment_created``, ...) and ``issue_event_type_name`` the issue
event behind it (``issue_generic``, ``issue_reopened``, ...).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from app.webhooks.commands import Command, Condition
from app.webhooks.providers.base import (
    CaseFacts,
    Incident,
    Mention,
    Provider,
    ReplyError,
    ReplyResult,
    ReplySettings,
    VerificationError,
    answer_excerpt,
    answer_json,
    bearer,
    check_signature,
    delivery_header,
    hmac_sha256_hex,
    incident_fields,
    mapping,
    remark,
    require_header,
    send,
    text_of,
)

SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"

#: Jira priority names (the default scheme: Highest..Lowest; the legacy one:
#: Blocker, Critical, Major, Minor, Trivial) to case severities.
PRIORITY_SEVERITY = {
    "blocker": "critical",
    "critical": "critical",
    "highest": "error",
    "high": "error",
    "major": "warning",
    "medium": "warning",
    "minor": "info",
    "low": "info",
    "lowest": "info",
    "trivial": "info",
}
#: ".../rest/api/2/issue/10002" (issue.self, comment.self): the site base before "/rest/".
_REST_PATH = re.compile(r"^(?P<base>https?://.+?)/rest/api/[^/]+/issue/(?P<issue>[^/?#]+)")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira would send for ``body``."""
    return "sha256=" + hmac_sha256_hex(secret, body)


class Jira(Provider):
    name = "jira"
    display_name = "Jira"
    secret_hint = "the admin webhook's Secret"
    reply_options = {
        "api_version": "2 (default: the comment body is plain text, Jira Data Center and "
        "Cloud) or 3 (Atlassian Document Format, Jira Cloud)",
        "user": "the account's email for Jira Cloud API tokens (basic auth); empty: the "
        "token is a Data Center personal access token (bearer)",
    }
    reply_option_choices = {"api_version": ("2", "3")}

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        return {DELIVERY_HEADER: delivery, SIGNATURE_HEADER: sign(secret, body)}

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = require_header(
            headers,
            SIGNATURE_HEADER,
            "set a secret on the Jira webhook (Jira administration > System > WebHooks) so that "
            "it signs deliveries",
        )
        method = given.split("=", 1)[0] if "=" in given else ""
        if method.lower() != "sha256":
            raise VerificationError(
                "bad_signature",
                f"{SIGNATURE_HEADER} should read sha256=<hex>; got method {method or 'none'!r}",
            )
        given = "sha256=" + given.split("=", 1)[1].lower()
        check_signature(given, sign(secret, body), SIGNATURE_HEADER)

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        return delivery_header(headers, DELIVERY_HEADER)

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        return text_of(mapping(payload).get("webhookEvent"), "unknown")

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        issue = mapping(payload.get("issue"))
        fields = mapping(issue.get("fields"))
        key = text_of(issue.get("key"))
        summary = _summary(event_type, payload)
        if not key:
            # Jira Server before 8 sends comment events without the issue: only the
            # comment's REST URL names the issue, by id, not by key.
            match = _REST_PATH.match(text_of(mapping(payload.get("comment")).get("self")))
            title = (
                f"Jira {event_type} on issue {match['issue']}"
                if match
                else f"Jira {event_type} without an issue"
            )
            return CaseFacts(dedup_key=None, title=title, summary=summary)
        title = text_of(fields.get("summary"), "Untitled issue")
        priority = text_of(mapping(fields.get("priority")).get("name")).lower()
        return CaseFacts(
            dedup_key=key,
            title=f"{key}: {title}",
            severity=PRIORITY_SEVERITY.get(priority, "info"),
            source_url=_browse_url(issue, key),
            summary=summary,
        )

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The issue's description (wiki text or Markdown on API v2, an Atlassian Document
        Format document on v3), its type, status, priority, reporter and labels."""
        fields = mapping(mapping(mapping(payload).get("issue")).get("fields"))
        description = fields.get("description")
        body = _adf_text(description).strip() if isinstance(description, Mapping) else description
        labels = fields.get("labels") if isinstance(fields.get("labels"), list) else []
        reporter = mapping(fields.get("reporter"))
        return Incident(
            body_markdown=text_of(body),
            fields=incident_fields(
                ("Type", mapping(fields.get("issuetype")).get("name")),
                ("Status", mapping(fields.get("status")).get("name")),
                ("Priority", mapping(fields.get("priority")).get("name")),
                ("Reporter", text_of(reporter.get("displayName")) or reporter.get("name")),
                ("Labels", ", ".join(text_of(label) for label in labels if text_of(label))),
            ),
            level=text_of(mapping(fields.get("priority")).get("name")),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """``{"key", "site"?, "url"?}``: the issue key, and the site's base URL from the
        issue's REST URL (the reply's API URL when the endpoint sets none)."""
        issue = mapping(mapping(payload).get("issue"))
        key = text_of(issue.get("key"))
        if not key:
            return None
        target = {"key": key}
        match = _REST_PATH.match(text_of(issue.get("self")))
        if match:
            target["site"] = match["base"]
            target["url"] = f"{match['base']}/browse/{key}"
        return target

    def mention(self, event_type: str, payload: Any) -> Mention | None:
        """A comment created: its ``body`` (plain text on API v2, the text of an Atlassian
        Document Format document on v3) and its author's user name (``name`` on Server and
        Data Center, the ``username`` in the author's REST URL, ``accountId`` on Cloud).
        Jira payloads say nothing of roles: only the endpoint's ``mention_users`` are
        trusted. A bot when the author's ``accountType`` is ``app``."""
        if event_type != "comment_created":
            return None
        comment = mapping(mapping(payload).get("comment"))
        author = mapping(comment.get("author"))
        username = _USERNAME.search(text_of(author.get("self")))
        body = comment.get("body")
        return Mention(
            text=_adf_text(body) if isinstance(body, Mapping) else text_of(body),
            author=text_of(author.get("name"))
            or (unquote(username[1]) if username else "")
            or text_of(author.get("accountId")),
            is_bot=text_of(author.get("accountType")) == "app",
        )

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """Jira REST API, "Add comment": ``POST /rest/api/2/issue/{key}/comment`` with
        ``{"body": "<text>"}``; version 3 takes the body as an Atlassian Document Format
        document. Cloud API tokens are basic auth with the account's email
        (``options.user``); Data Center personal access tokens are bearer tokens."""
        key = target.get("key")
        if not isinstance(key, str) or not key:
            raise ReplyError("the case names no Jira issue", permanent=True)
        site = settings.api_url or str(target.get("site") or "")
        if not site:
            raise ReplyError("set the Jira site's URL as the endpoint's reply api_url",
                             permanent=True)  # fmt: skip
        version = str(settings.options.get("api_version") or "2")
        body: Any = text if version == "2" else adf_document(text)
        user = str(settings.options.get("user") or "")
        if user:
            token = base64.b64encode(f"{user}:{settings.token}".encode()).decode()
            auth = {"Authorization": f"Basic {token}"}
        else:
            auth = bearer(settings.token)
        response = send(
            "POST",
            f"{site.rstrip('/')}/rest/api/{version}/issue/{quote(key, safe='')}/comment",
            headers={**auth, "Accept": "application/json"},
            json={"body": body},
        )
        comment_id = answer_json(response).get("id")
        link = target.get("url") if isinstance(target.get("url"), str) else None
        if link and comment_id:
            link = f"{link}?focusedCommentId={comment_id}"
        return ReplyResult(response.status_code, link, answer_excerpt(response))


_USERNAME = re.compile(r"[?&]username=([^&#]+)")


def _adf_text(node: Any) -> str:
    """The text of an Atlassian Document Format node: text nodes joined, a line per block."""
    if not isinstance(node, Mapping):
        return ""
    if node.get("type") == "text":
        return node["text"] if isinstance(node.get("text"), str) else ""
    if node.get("type") == "hardBreak":
        return "\n"
    content = node.get("content") if isinstance(node.get("content"), list) else []
    inner = "".join(_adf_text(child) for child in content)
    return inner + "\n" if node.get("type") in ("paragraph", "heading") else inner


def adf_document(text: str) -> dict:
    """``text`` as an Atlassian Document Format document: a paragraph per block of lines
    (blank lines separate them), line breaks kept as ``hardBreak``."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        content: list[dict] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def _browse_url(issue: dict, key: str) -> str | None:
    # issue.self is the REST URL (https://jira.example.com/jira/rest/api/2/issue/10002);
    # people want the page: https://jira.example.com/jira/browse/KEY-1.
    match = _REST_PATH.match(text_of(issue.get("self")))
    return f"{match['base']}/browse/{key}" if match else None


def _summary(event_type: str, payload: dict) -> str:
    who = text_of(mapping(payload.get("user")).get("displayName"))
    if event_type.startswith("comment_") or mapping(payload.get("comment")):
        comment = mapping(payload.get("comment"))
        author = text_of(mapping(comment.get("author")).get("displayName")) or who or "someone"
        if event_type == "comment_deleted":
            return f"{author} deleted a comment"
        verb = "edited a comment" if event_type == "comment_updated" else "commented"
        return remark(author, verb, text_of(comment.get("body")))
    who = who or "someone"
    if event_type == "jira:issue_created":
        return f"{who} created the issue"
    if event_type == "jira:issue_deleted":
        return f"{who} deleted the issue"
    items = mapping(payload.get("changelog")).get("items")
    changes = [
        f"{text_of(item.get('field'), 'a field')}: "
        f"{text_of(item.get('fromString'), 'none')} → {text_of(item.get('toString'), 'none')}"
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    if changes:
        return f"{who} changed " + "; ".join(changes[:5])
    return f"{who} updated the issue"


DONE = Condition("issue.fields.status.statusCategory.key", "eq", "done")

BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="jira.done",
        trigger=("jira:issue_updated",),
        conditions=(DONE,),
        action="close_case",
        priority=10,
        description="The issue moved to a status in the Done category: close its case "
        "(reason auto).",
    ),
    Command(
        name="jira.reopened",
        trigger=("jira:issue_updated",),
        conditions=(Condition("issue_event_type_name", "eq", "issue_reopened"),),
        action="open_case",
        priority=15,
        description="The issue was reopened (Jira's Issue Reopened event): reopen its case.",
    ),
    Command(
        name="jira.open",
        trigger=("jira:issue_created",),
        action="open_case",
        priority=20,
        description="An issue created: open its case.",
    ),
    Command(
        name="jira.deleted",
        trigger=("jira:issue_deleted",),
        action="close_case",
        priority=20,
        description="An issue deleted: close its case (reason auto).",
    ),
    Command(
        name="jira.activity",
        trigger=("jira:issue_updated", "comment_created", "comment_updated", "comment_deleted"),
        conditions=(Condition("issue.key", "exists", True),),
        action="update_case",
        priority=50,
        description="Edits, transitions and comments: add to the issue's case timeline.",
    ),
    Command(
        name="jira.comment_without_issue",
        trigger=("comment_*",),
        action="ignore",
        priority=60,
        description="A comment event that does not name its issue (Jira Server before 8): "
        "kept in the deliveries log; no case can be found for it.",
    ),
]
