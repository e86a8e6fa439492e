"""GitHub: ``X-Hub-Signature-256``, ``X-GitHub-Delivery``, ``X-GitHub-Event`` + ``action``.

GitHub docs, "Validating webhook deliveries": the signature is
``sha256=<hex HMAC-SHA256(secret, raw body)>``; compare in constant time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.webhooks.commands import Command, Condition
from app.webhooks.providers.base import (
    CaseFacts,
    Provider,
    check_signature,
    delivery_header,
    event_and_action,
    header,
    hmac_sha256_hex,
    mapping,
    remark,
    require_header,
    text_of,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
EVENT_HEADER = "X-GitHub-Event"

#: Events about a run of CI: one case per repository + workflow/check name + branch.
CI_EVENTS = ("workflow_run", "workflow_job", "check_run")
FAILED_CONCLUSIONS = ["failure", "timed_out"]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body``."""
    return "sha256=" + hmac_sha256_hex(secret, body)


class GitHub(Provider):
    name = "github"
    ping_event = "ping"

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

    def builtin_commands(self) -> list[Command]:
        return BUILTIN_COMMANDS


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
