"""GitHub: ``X-Hub-Signature-256``, ``X-GitHub-Delivery``, ``X-GitHub-Event`` + ``action``.

GitHub docs, "Validating webhook deliveries": the signature is
``sha256=<hex HMAC-SHA256(secret, raw body)>``; compare in constant time.
"""

from __future__ import annotations

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
    answer_excerpt,
    answer_json,
    array,
    bearer,
    check_signature,
    delivery_header,
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

SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
EVENT_HEADER = "X-GitHub-Event"

#: Events about a run of CI: one case per repository + workflow/check name + branch.
CI_EVENTS = ("workflow_run", "workflow_job", "check_run")
FAILED_CONCLUSIONS = ["failure", "timed_out"]
#: GitHub REST API version replies ask for (``X-GitHub-Api-Version``).
API_VERSION = "2022-11-28"
#: Comment events people write in: where a mention of Casehook can be.
COMMENT_EVENTS = ("issue_comment.created", "pull_request_review_comment.created")
#: ``author_association`` values of people who belong to the repository (GitHub docs,
#: "Webhook events and payloads": author_association).
MEMBER_ASSOCIATIONS = ("OWNER", "MEMBER", "COLLABORATOR")
#: Reactions GitHub accepts on a comment.
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body``."""
    return "sha256=" + hmac_sha256_hex(secret, body)


class GitHub(Provider):
    name = "github"
    display_name = "GitHub"
    secret_hint = "the webhook's Secret"
    ping_event = "ping"
    default_api_url = "https://api.github.com"
    reply_options = {
        "reaction": "reaction put on the comment that triggered a comment command "
        f"({', '.join(REACTIONS)}; default eyes; none: no reaction)",
    }
    reply_option_choices = {"reaction": (*REACTIONS, "none")}
    reply_marker = "\n\n<!-- casehook -->"

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        return {DELIVERY_HEADER: delivery, SIGNATURE_HEADER: sign(secret, body)}

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        given = require_header(
            headers,
            SIGNATURE_HEADER,
            "set a secret on the GitHub webhook so that it signs deliveries",
        )
        check_signature(given, sign(secret, body), SIGNATURE_HEADER)

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        return delivery_header(headers, DELIVERY_HEADER)

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        return event_and_action(header(headers, EVENT_HEADER) or "unknown", payload)

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        payload = mapping(payload)
        repository = mapping(payload.get("repository"))
        repo = text_of(repository.get("full_name"), "unknown repository")
        event = event_type.split(".", 1)[0]
        if event in CI_EVENTS:
            run = mapping(payload.get(event))
            name, branch = _ci_name_and_branch(event, payload, run)
            conclusion = text_of(run.get("conclusion"), "unknown")
            return CaseFacts(
                dedup_key=f"{repo}:ci:{name}@{branch}",
                title=f"{name} {conclusion.replace('_', ' ')} on {branch} in {repo}",
                severity="error",
                source_url=text_of(run.get("html_url")) or None,
                summary=f"{name} on {branch}: {conclusion.replace('_', ' ')}",
            )
        subject = mapping(payload.get("pull_request")) or mapping(payload.get("issue"))
        number = subject.get("number", payload.get("number"))
        kind = (
            "pull request"
            if payload.get("pull_request") or subject.get("pull_request")
            else ("issue")
        )
        summary = _summary(event_type, payload, kind)
        if number is None:
            return CaseFacts(
                dedup_key=None, title=f"GitHub {event_type} in {repo}", summary=summary
            )
        title = text_of(subject.get("title"), f"Untitled {kind}")
        # Issue and pull request numbers share one sequence per repository, so comments on a
        # pull request (sent as issue_comment) land on the pull request's case.
        return CaseFacts(
            dedup_key=f"{repo}#{number}",
            title=f"{title} ({repo}#{number})",
            severity="info",
            source_url=text_of(subject.get("html_url")) or None,
            summary=summary,
        )

    def incident(self, event_type: str, payload: Any) -> Incident:
        """The issue or pull request body (Markdown) with its state, author and labels; for
        CI runs the workflow, branch, conclusion and commit."""
        payload = mapping(payload)
        event = event_type.split(".", 1)[0]
        if event in CI_EVENTS:
            run = mapping(payload.get(event))
            name, branch = _ci_name_and_branch(event, payload, run)
            return Incident(
                fields=incident_fields(
                    ("Workflow", name, run.get("html_url")),
                    ("Branch", branch),
                    ("Conclusion", text_of(run.get("conclusion")).replace("_", " ")),
                    ("Commit", text_of(run.get("head_sha"))[:12]),
                    ("Repository", mapping(payload.get("repository")).get("full_name")),
                ),
                level=text_of(run.get("conclusion")),
            )
        subject = mapping(payload.get("pull_request")) or mapping(payload.get("issue"))
        labels = [text_of(mapping(label).get("name")) for label in array(subject.get("labels"))]
        return Incident(
            body_markdown=text_of(subject.get("body")),
            fields=incident_fields(
                ("State", subject.get("state")),
                ("Opened by", mapping(subject.get("user")).get("login")),
                ("Labels", ", ".join(label for label in labels if label)),
                ("Repository", mapping(payload.get("repository")).get("full_name")),
            ),
        )

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """``{"owner", "repo", "number", "url"?}`` of the issue or pull request, with the
        triggering ``{"comment_id"}`` for ``issue_comment`` events."""
        payload = mapping(payload)
        repo = text_of(mapping(payload.get("repository")).get("full_name"))
        subject = mapping(payload.get("pull_request")) or mapping(payload.get("issue"))
        number = subject.get("number", payload.get("number"))
        if "/" not in repo or not isinstance(number, int) or isinstance(number, bool):
            return None
        owner, name = repo.split("/", 1)
        target: dict[str, Any] = {"owner": owner, "repo": name, "number": number}
        if url := http_url(subject.get("html_url")):
            target["url"] = url
        comment_id = mapping(payload.get("comment")).get("id")
        if event_type.startswith("issue_comment.") and isinstance(comment_id, int):
            target[TRIGGER] = {"comment_id": comment_id}
        return target

    def mention(self, event_type: str, payload: Any) -> Mention | None:
        """An issue, pull request or review comment: its ``body``, its author's login, trusted
        for ``author_association`` OWNER/MEMBER/COLLABORATOR; a bot when the author or the
        sender is of type ``Bot`` (GitHub Apps, Actions) or its login ends in ``[bot]``."""
        if event_type not in COMMENT_EVENTS:
            return None
        payload = mapping(payload)
        comment = mapping(payload.get("comment"))
        user, sender = mapping(comment.get("user")), mapping(payload.get("sender"))
        login = text_of(user.get("login")) or text_of(sender.get("login"))
        association = text_of(comment.get("author_association")).upper()
        return Mention(
            text=text_of(comment.get("body")),
            author=login,
            trusted=association in MEMBER_ASSOCIATIONS,
            is_bot="Bot" in (user.get("type"), sender.get("type")) or login.endswith("[bot]"),
        )

    def acknowledge(self, target: Mapping[str, Any], settings: ReplySettings) -> ReplyResult | None:
        """The reply's ``reaction`` (default 👀) on the triggering comment (GitHub docs,
        "REST API endpoints for reactions")."""
        comment_id = mapping(target.get(TRIGGER)).get("comment_id")
        reaction = str(settings.options.get("reaction") or "eyes")
        owner, repo = target.get("owner"), target.get("repo")
        if not (isinstance(comment_id, int) and isinstance(owner, str) and isinstance(repo, str)):
            return None
        if reaction not in REACTIONS:
            return None
        base = f"{settings.api_url}/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"
        response = send("POST", f"{base}/issues/comments/{comment_id}/reactions",
                        headers=_headers(settings), json={"content": reaction})  # fmt: skip
        return ReplyResult(response.status_code, None, answer_excerpt(response))

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """GitHub docs, "REST API endpoints for issue comments": ``POST
        /repos/{owner}/{repo}/issues/{issue_number}/comments`` with ``{"body"}`` (pull
        requests are issues here); "for reactions": ``POST
        /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions`` with ``{"content"}``.
        The reaction goes first: GitHub answers 200 for one that exists, so a retry after a
        failed comment repeats nothing."""
        owner, repo, number = target.get("owner"), target.get("repo"), target.get("number")
        if not (isinstance(owner, str) and isinstance(repo, str) and isinstance(number, int)):
            raise ReplyError("the case names no GitHub issue or pull request", permanent=True)
        base = f"{settings.api_url}/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"
        headers = _headers(settings)
        comment_id = mapping(target.get(TRIGGER)).get("comment_id")
        reaction = str(settings.options.get("reaction") or "eyes")
        if isinstance(comment_id, int) and reaction in REACTIONS:
            try:
                send("POST", f"{base}/issues/comments/{comment_id}/reactions", headers=headers,
                     json={"content": reaction})  # fmt: skip
            except ReplyError as exc:
                if not exc.permanent:  # rate limited or down: the comment would be too
                    raise
        response = send("POST", f"{base}/issues/{number}/comments", headers=headers,
                        json={"body": text})  # fmt: skip
        answer = answer_json(response)
        return ReplyResult(
            response.status_code, http_url(answer.get("html_url")), answer_excerpt(response)
        )


def _headers(settings: ReplySettings) -> dict[str, str]:
    return {
        **bearer(settings.token),
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "Casehook",
    }


def _summary(event_type: str, payload: dict, kind: str) -> str:
    who = text_of(mapping(payload.get("sender")).get("login"), "someone")
    action = text_of(payload.get("action"), event_type).replace("_", " ")
    if event_type.startswith("issue_comment."):
        return remark(who, "commented", text_of(mapping(payload.get("comment")).get("body")))
    if action == "labeled":
        label = text_of(mapping(payload.get("label")).get("name"))
        return f"{who} added the label {label}" if label else f"{who} labeled the {kind}"
    if action == "assigned":
        assignee = text_of(mapping(payload.get("assignee")).get("login"))
        return f"{who} assigned {assignee}" if assignee else f"{who} assigned the {kind}"
    return f"{who} {action} the {kind}"


def _ci_name_and_branch(event: str, payload: dict, run: dict) -> tuple[str, str]:
    if event == "check_run":
        name = text_of(run.get("name"))
        branch = text_of(mapping(run.get("check_suite")).get("head_branch"))
    elif event == "workflow_job":
        name = text_of(run.get("workflow_name")) or text_of(run.get("name"))
        branch = text_of(run.get("head_branch"))
    else:
        name = text_of(run.get("name")) or text_of(mapping(payload.get("workflow")).get("name"))
        branch = text_of(run.get("head_branch"))
    return name or event.replace("_", " "), branch or "unknown branch"


def _ci(event: str, action: str, name: str, conclusions: list[str], description: str) -> Command:
    return Command(
        name=name,
        trigger=(f"{event}.completed",),
        conditions=(Condition(f"{event}.conclusion", "in", conclusions),),
        action=action,
        priority=20,
        description=description,
    )


BUILTIN_COMMANDS: list[Command] = [
    Command(
        name="github.open",
        trigger=(
            "issues.opened",
            "issues.reopened",
            "pull_request.opened",
            "pull_request.reopened",
        ),
        action="open_case",
        priority=10,
        description="An issue or pull request opened: open its case (or reopen it).",
    ),
    Command(
        name="github.close",
        trigger=("issues.closed", "pull_request.closed"),
        action="close_case",
        priority=10,
        description="An issue or pull request closed: close its case (reason auto).",
    ),
    Command(
        name="github.activity",
        trigger=(
            "issues.*",
            "issue_comment.created",
            "pull_request.*",
            "pull_request_review.*",
            "pull_request_review_comment.*",
        ),
        action="update_case",
        priority=50,
        description="Edits, labels, assignments, comments and other pull request activity: "
        "add to the case's timeline.",
    ),
    *[
        cmd
        for event in CI_EVENTS
        for cmd in (
            _ci(
                event,
                "open_case",
                f"github.{event}.failed",
                FAILED_CONCLUSIONS,
                f"A failed {event}: open a case per repository, name and branch.",
            ),
            _ci(
                event,
                "close_case",
                f"github.{event}.succeeded",
                ["success"],
                f"A successful {event}: close the matching failure case (reason auto).",
            ),
        )
    ],
]
