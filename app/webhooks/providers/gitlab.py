"""GitLab: ``X-Gitlab-Token``, ``Idempotency-Key``, body ``object_kind`` + action or status.

GitLab docs, "Webhooks" (user/project/integrations/webhooks): GitLab does not sign
deliveries; the secret token configured on the webhook is sent as-is in ``X-Gitlab-Token``,
so the check is a constant-time comparison with the endpoint's secret. ``Idempotency-Key``
(GitLab 17.4+) is the same on every retry of one delivery; older versions send
``X-Gitlab-Event-UUID``. GitLab docs, "Webhook events": ``object_kind`` names the resource
(``issue``, ``merge_request``, ``note``, ``pipeline``), ``object_attributes.action`` says what
happened to an issue, merge request or note (``open``, ``close``, ``reopen``, ``update``,
``merge``, ...) and ``object_attributes.status`` is a pipeline's state (``failed``,
``success``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from app.webhooks.commands import Command, Condition
from app.webhooks.providers.base import (
    TRIGGER,
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
    array,
    constant_time_equal,
    delivery_header,
    header,
    http_url,
    incident_fields,
    mapping,
    remark,
    require_header,
    send,
    text_of,
)

TOKEN_HEADER = "X-Gitlab-Token"
DELIVERY_HEADERS = ("Idempotency-Key", "X-Gitlab-Event-UUID")
#: "Issue Hook", "Merge Request Hook", ...: only used when the body has no ``object_kind``.
EVENT_HEADER = "X-Gitlab-Event"

#: Pipeline states spelled differently by some senders, mapped to GitLab's own names
#: (``failed``, ``success``, ``canceled``, ... in the GitLab docs). Published captures
#: (e.g. the shared pipeline fixture) say ``fail``.
STATUS_ALIASES = {"fail": "failed"}
#: Past tense of an action, for the timeline ("opened the issue").
ACTION_VERBS = {
    "open": "opened",
    "close": "closed",
    "reopen": "reopened",
    "update": "updated",
    "merge": "merged",
    "approved": "approved",
    "unapproved": "unapproved",
    "approval": "approved",
    "unapproval": "unapproved",
    "create": "created",
}
#: GitLab docs, "Roles and permissions": access levels; Developer (30) and above belong to
#: the project for mentions.
MEMBER_ACCESS_LEVEL = 30


class GitLab(Provider):
    name = "gitlab"
    display_name = "GitLab"
    secret_hint = "the webhook's Secret token"
    default_api_url = "https://gitlab.com/api/v4"
    reply_marker = "\n\n<!-- casehook -->"

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        # No HMAC: GitLab sends the secret token itself.
        return {TOKEN_HEADER: secret, DELIVERY_HEADERS[0]: delivery}

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = require_header(
            headers, TOKEN_HEADER, "set the endpoint's secret as the GitLab webhook's secret token"
        )
        if not constant_time_equal(given, secret):
            raise VerificationError(
                "bad_token",
                f"{TOKEN_HEADER} does not match the endpoint's secret; paste the secret shown "
                "when the endpoint was created into the webhook's secret token",
            )

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        return delivery_header(headers, *DELIVERY_HEADERS)

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        payload = mapping(payload)
        kind = text_of(payload.get("object_kind")) or _kind_from_header(headers)
        attributes = mapping(payload.get("object_attributes"))
        if kind == "pipeline":
            status = text_of(attributes.get("status")).lower()
            action = STATUS_ALIASES.get(status, status)
        else:
            action = text_of(attributes.get("action"))
        return f"{kind}.{action}" if action else kind

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        project = text_of(
            mapping(payload.get("project")).get("path_with_namespace"), "unknown project"
        )
        kind = event_type.split(".", 1)[0]
        attributes = mapping(payload.get("object_attributes"))
        who = _who(payload)
        if kind == "pipeline":
            return _pipeline_facts(event_type, payload, attributes, project)
        if kind == "note":
            noteable = text_of(attributes.get("noteable_type"))
            subject = mapping(
                payload.get("merge_request" if noteable == "MergeRequest" else "issue")
            )
            summary = remark(who, "commented", text_of(attributes.get("note")))
            return _subject_facts(
                "merge_request" if noteable == "MergeRequest" else "issue",
                subject,
                project,
                summary,
                url=text_of(attributes.get("url")) or None,
            )
        action = text_of(attributes.get("action"))
        label = "merge request" if kind == "merge_request" else kind.replace("_", " ")
        verb = ACTION_VERBS.get(action, action.replace("_", " ") or "sent an event about")
        return _subject_facts(kind, attributes, project, f"{who} {verb} the {label}")

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The issue or merge request description (Markdown) with its state, author and
        labels; for pipelines the ref, status and failed jobs."""
        payload = mapping(payload)
        kind = event_type.split(".", 1)[0]
        attributes = mapping(payload.get("object_attributes"))
        project = mapping(payload.get("project")).get("path_with_namespace")
        if kind == "pipeline":
            failed = [
                text_of(build.get("name"))
                for build in array(payload.get("builds"))
                if isinstance(build, dict) and build.get("status") == "failed"
            ]
            status = text_of(attributes.get("status"))
            return Incident(
                fields=incident_fields(
                    ("Ref", attributes.get("ref")),
                    ("Status", STATUS_ALIASES.get(status, status)),
                    ("Failed jobs", ", ".join(name for name in failed if name)),
                    ("Commit", text_of(attributes.get("sha"))[:12]),
                    ("Project", project, mapping(payload.get("project")).get("web_url")),
                ),
            )
        if kind == "note":
            noteable = text_of(attributes.get("noteable_type"))
            subject = mapping(
                payload.get("merge_request" if noteable == "MergeRequest" else "issue")
            )
        else:
            subject = attributes
        labels = [text_of(mapping(label).get("title")) for label in array(payload.get("labels"))]
        return Incident(
            body_markdown=text_of(subject.get("description")),
            fields=incident_fields(
                ("State", subject.get("state")),
                ("Opened by", _who(payload) if kind != "note" else ""),
                ("Labels", ", ".join(label for label in labels if label)),
                ("Project", project, mapping(payload.get("project")).get("web_url")),
            ),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """``{"project_id", "kind": "issues"|"merge_requests", "iid", "url"?}``."""
        payload = mapping(payload)
        project_id = mapping(payload.get("project")).get("id") or payload.get("project_id")
        kind = event_type.split(".", 1)[0]
        attributes = mapping(payload.get("object_attributes"))
        if kind == "note":
            noteable = text_of(attributes.get("noteable_type"))
            kind = "merge_request" if noteable == "MergeRequest" else "issue"
            subject = mapping(payload.get(kind))
        else:
            subject = attributes
        iid = subject.get("iid")
        if kind not in ("issue", "merge_request") or not isinstance(iid, int) or not project_id:
            return None
        target: dict[str, Any] = {"project_id": project_id, "kind": f"{kind}s", "iid": iid}
        if url := http_url(subject.get("url")):
            target["url"] = url
        note_id = attributes.get("id")
        if event_type.startswith("note") and isinstance(note_id, int):
            target[TRIGGER] = {"note_id": note_id}
        return target

    def mention(self, event_type: str, payload: Any) -> Mention | None:
        """A note (comment) being created: its ``note`` text and author (``user.username``),
        trusted when the payload carries the author's access level (``user.access_level``
        or ``object_attributes.author.access_level``, as some GitLab versions and relays
        do) of Developer or above; a bot for ``user.bot`` or GitLab's bot users (project
        and group access tokens: ``project_<id>_bot…``, ``group_<id>_bot…``)."""
        if event_type not in ("note", "note.create"):
            return None
        payload = mapping(payload)
        attributes = mapping(payload.get("object_attributes"))
        user = mapping(payload.get("user"))
        username = text_of(user.get("username"))
        level = user.get("access_level", mapping(attributes.get("author")).get("access_level"))
        if isinstance(level, Mapping):
            level = level.get("integer_value")
        trusted = isinstance(level, int) and not isinstance(level, bool)
        return Mention(
            text=text_of(attributes.get("note")),
            author=username,
            trusted=trusted and level >= MEMBER_ACCESS_LEVEL,
            is_bot=user.get("bot") is True or _bot_name(username),
        )

    def acknowledge(self, target: Mapping[str, Any], settings: ReplySettings) -> ReplyResult | None:
        """GitLab docs, "Emoji reactions API": ``POST
        /projects/:id/<issues|merge_requests>/:iid/notes/:note_id/award_emoji`` with
        ``{"name": "eyes"}``."""
        note_id = mapping(target.get(TRIGGER)).get("note_id")
        kind, iid = target.get("kind"), target.get("iid")
        project = str(target.get("project_id") or "")
        if not (isinstance(note_id, int) and kind in ("issues", "merge_requests") and project):
            return None
        url = (f"{settings.api_url}/projects/{quote(project, safe='')}/{kind}/{iid}/notes/"
               f"{note_id}/award_emoji")  # fmt: skip
        response = send("POST", url, headers={"PRIVATE-TOKEN": settings.token},
                        json={"name": "eyes"})  # fmt: skip
        return ReplyResult(response.status_code, None, answer_excerpt(response))

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """GitLab docs, "Notes API": ``POST /projects/:id/issues/:issue_iid/notes`` (or
        ``merge_requests/:merge_request_iid/notes``) with ``{"body"}``, authenticated by the
        ``PRIVATE-TOKEN`` header. The answer is the note; its link is the subject's URL with
        ``#note_<id>``."""
        kind, iid = target.get("kind"), target.get("iid")
        project = str(target.get("project_id") or "")
        if kind not in ("issues", "merge_requests") or not isinstance(iid, int) or not project:
            raise ReplyError("the case names no GitLab issue or merge request", permanent=True)
        url = f"{settings.api_url}/projects/{quote(project, safe='')}/{kind}/{iid}/notes"
        response = send("POST", url, headers={"PRIVATE-TOKEN": settings.token},
                        json={"body": text})  # fmt: skip
        note_id = answer_json(response).get("id")
        link = http_url(target.get("url"))
        return ReplyResult(
            response.status_code,
            f"{link}#note_{note_id}" if link and note_id else link,
            answer_excerpt(response),
        )


def _kind_from_header(headers: Mapping[str, str]) -> str:
    # "Merge Request Hook" -> "merge_request"; "Confidential Issue Hook" -> "issue".
    event = header(headers, EVENT_HEADER).lower().removesuffix(" hook")
    event = event.removeprefix("confidential ").replace(" ", "_")
    return event or "unknown"


def _bot_name(username: str) -> bool:
    return re.match(r"^(project|group)_\d+_bot(_|$)", username) is not None


def _who(payload: dict) -> str:
    user = mapping(payload.get("user"))
    return text_of(user.get("username")) or text_of(user.get("name"), "someone")


def _subject_facts(
    kind: str, subject: dict, project: str, summary: str, url: str | None = None
) -> CaseFacts:
    iid = text_of(subject.get("iid"))
    label = "merge request" if kind == "merge_request" else "issue"
    if not iid or kind not in ("issue", "merge_request"):
        return CaseFacts(
            dedup_key=None, title=f"GitLab {kind.replace('_', ' ')} in {project}", summary=summary
        )
    # GitLab's own references: group/project#12 for issues, group/project!12 for merge
    # requests; issues carry "issue/" so the two sequences can never collide.
    reference = f"{project}!{iid}" if kind == "merge_request" else f"{project}#{iid}"
    dedup_key = f"{project}!{iid}" if kind == "merge_request" else f"{project}#issue/{iid}"
    title = text_of(subject.get("title"), f"Untitled {label}")
    return CaseFacts(
        dedup_key=dedup_key,
        title=f"{title} ({reference})",
        severity="info",
        # A note's own url points at the comment; the subject's at the issue itself.
        source_url=text_of(subject.get("url")) or url,
        summary=summary,
    )


def _pipeline_facts(event_type: str, payload: dict, attributes: dict, project: str) -> CaseFacts:
    ref = text_of(attributes.get("ref"), "unknown ref")
    status = event_type.split(".", 1)[1] if "." in event_type else "unknown"
    pipeline_id = text_of(attributes.get("id"))
    web_url = text_of(mapping(payload.get("project")).get("web_url"))
    source_url = text_of(attributes.get("url")) or (
        f"{web_url.rstrip('/')}/-/pipelines/{pipeline_id}" if web_url and pipeline_id else None
    )
    failed = [
        text_of(build.get("name"))
        for build in array(payload.get("builds"))
        if isinstance(build, dict) and build.get("status") == "failed" and build.get("name")
    ]
    summary = f"Pipeline #{pipeline_id or '?'} on {ref}: {status.replace('_', ' ')}"
    if failed:
        summary += f" (failed jobs: {', '.join(failed[:10])})"
    return CaseFacts(
        # One case per project and ref: the next green pipeline on the ref closes it.
        dedup_key=f"{project}:pipeline:{ref}",
        title=f"Pipeline {status.replace('_', ' ')} on {ref} in {project}",
        severity="error",
        source_url=source_url,
        summary=summary,
    )


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="gitlab.open",
        trigger=("issue.open", "issue.reopen", "merge_request.open", "merge_request.reopen"),
        action="open_case",
        priority=10,
        description="An issue or merge request opened: open its case (or reopen it).",
    ),
    Command(
        name="gitlab.close",
        trigger=("issue.close", "merge_request.close", "merge_request.merge"),
        action="close_case",
        priority=10,
        description="An issue closed, a merge request closed or merged: close its case "
        "(reason auto).",
    ),
    Command(
        name="gitlab.pipeline.failed",
        trigger=("pipeline.failed",),
        action="open_case",
        priority=20,
        description="A failed pipeline: open a case per project and ref.",
    ),
    Command(
        name="gitlab.pipeline.succeeded",
        trigger=("pipeline.success",),
        action="close_case",
        priority=20,
        description="A successful pipeline: close the ref's failure case (reason auto).",
    ),
    Command(
        name="gitlab.activity",
        trigger=("issue.*", "merge_request.*"),
        action="update_case",
        priority=50,
        description="Edits, approvals and other activity: add to the case's timeline.",
    ),
    Command(
        name="gitlab.comment",
        trigger=("note", "note.*"),
        conditions=(Condition("object_attributes.noteable_type", "in", ["Issue", "MergeRequest"]),),
        action="update_case",
        priority=50,
        description="A comment on an issue or merge request: add it to the case's timeline.",
    ),
]
