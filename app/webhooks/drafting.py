"""Drafting a command from a sentence (issue 10): the LLM proposes, ``build_command`` decides.

An admin describes a command in words; the configured OpenAI-compatible LLM
(``app.writing.llm``: ``LLM_BASE_URL``, ``LLM_MODEL``, ``LLM_API_KEY``, ``LLM_TIMEOUT_SECONDS``)
answers with a command definition as JSON, which is validated by the same ``build_command``
as the command form and the API, then dry-run over the endpoint's recent deliveries with the
draft laid over the stored commands. Nothing is stored: the admin saves the draft through the
ordinary form (or ``POST /api/endpoints/<id>/commands``).

The LLM call happens inside the request (an admin waits for it, like a form submit), so no
database transaction may be open meanwhile: the session is rolled back before the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app.extensions import db
from app.webhooks.commands import ACTIONS, OPS, Command, CommandError, build_command
from app.webhooks.models import Endpoint
from app.webhooks.payloads import parse_payload
from app.webhooks.providers.base import PayloadError
from app.webhooks.views_support import (
    DryRun,
    ManageError,
    command_views,
    dry_run,
    dry_run_choices,
    ensure_console_owned,
    sample_names,
)
from app.writing.llm import LlmError, chat, completions_url, json_object, llm_settings

#: Deliveries (or, with none, shipped samples) a draft is dry-run over, newest first.
DRAFT_DRY_RUNS = 10
#: Longest description accepted (characters).
DESCRIPTION_LIMIT = 2000
#: Payload paths (with their JSON types) shown to the model per event type, and how many
#: event types (the newest delivery of each).
PATH_LIMIT = 120
SHAPE_TYPES = 5
#: Leaves no command conditions on, left out of the paths (GitHub sends dozens of URLs).
NOISE = re.compile(r"(^|\.|_)(url|node_id|gravatar_id)$")

#: What to do when no LLM is configured (shown in the console and in the API's 503).
HOW_TO_CONFIGURE = (
    "Drafting needs an LLM: set LLM_BASE_URL (any OpenAI-compatible chat-completions "
    "server, e.g. https://api.openai.com or http://127.0.0.1:8080) and LLM_MODEL, plus "
    "LLM_API_KEY if the server wants one (LLM_TIMEOUT_SECONDS, default 30), in the "
    "environment, then restart Casehook."
)

SYSTEM = f"""You write command definitions for Casehook, a service that turns webhook \
deliveries into cases. A command is a rule: when a delivery's event type matches the trigger \
and every condition holds, the action runs. Answer with ONE JSON object only, no prose, with \
these fields:
- "name" (required): 1-100 characters, letters, digits and . _ : - only, no spaces, e.g. \
"p1-issues".
- "description": one sentence saying what the command is for.
- "trigger" (required): a list of event type patterns with * wildcards. Event types are \
"<event>.<action>" for GitHub (e.g. "issues.labeled", "issue_comment.created", \
"pull_request.opened", "workflow_run.completed") or the provider's own names.
- "conditions": a list of {{"path", "op", "value"}} that must all hold. "path" is dotted into \
the JSON payload, list indexes as numbers (e.g. "label.name", "issue.labels.0.name"). "op" is \
one of {", ".join(OPS)}: eq / ne compare with value; in needs a list value; contains tests \
a list or string payload value; exists takes true/false; matches is a regular expression.
- "priority": integer, lower runs first (default 100).
- "action" (required): one of {", ".join(ACTIONS)}. open_case opens (or updates) a case; \
update_case adds to an open case; close_case closes it; ignore records the delivery only; \
comment posts "reply_template" to the source thread; run_agent runs a registered agent.
- "title_template": Jinja2 over the payload's top-level keys (plus payload and event_type) for \
the case title, e.g. "P1: {{{{ issue.title }}}}". Empty: the provider's title.
- "timeline_template": Jinja2, the timeline line. Empty: the provider's summary.
- "reply_template": Jinja2 Markdown, required by the comment action.
- "aliases": list of other names (for "@casehook <name>" mentions).
- "stop_after_match": boolean (default true); "enabled": boolean (default true).
- run_agent only: "agent" (the agent's name), "prompt_template" (Jinja2), "reply" (boolean), \
"requires_approval" (boolean).
Use only paths that exist in the payloads you are shown. Never invent other fields."""


@dataclass(frozen=True)
class Draft:
    """A validated, unsaved command: ``definition`` as the API shows commands, the ``model``
    that drafted it, and ``runs``: a dry run per recent delivery (or sample), draft included."""

    command: Command
    definition: dict
    model: str
    runs: list[DryRun]


def llm_configured() -> bool:
    return llm_settings() is not None


def draft_command(endpoint: Endpoint, description: Any) -> Draft:
    """Ask the LLM for a command doing ``description`` on ``endpoint``; validate; dry-run it.

    ``ManageError``: 400 ``invalid_description``; 409 for a config endpoint; 503
    ``llm_not_configured`` (the detail says which settings); 502 ``llm_failed`` (unreachable,
    timeout, non-2xx, not a chat completion); 422 ``invalid_draft`` when the answer is not a
    JSON object or ``build_command`` refuses it (its message, ``field`` naming the part).
    """
    if not isinstance(description, str) or not description.strip():
        raise ManageError(
            400,
            "invalid_description",
            "describe the command, e.g. 'open a critical case when an issue gets the label "
            "p1, titled P1: and the issue title'",
            "description",
        )
    if len(description) > DESCRIPTION_LIMIT:
        raise ManageError(
            400,
            "invalid_description",
            f"keep the description under {DESCRIPTION_LIMIT} characters",
            "description",
        )
    ensure_console_owned(endpoint)
    settings = llm_settings()
    if settings is None:
        raise ManageError(503, "llm_not_configured", HOW_TO_CONFIGURE)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _prompt(endpoint, description.strip())},
    ]
    # The call may take up to the LLM timeout: hold no transaction (nor its locks) meanwhile.
    db.session.rollback()
    try:
        answer, model = chat(
            completions_url(settings["base_url"]),
            settings["model"],
            settings["api_key"],
            settings["timeout"],
            messages,
            task="command_draft",
            response_format={"type": "json_object"},
        )
    except LlmError as exc:
        raise ManageError(502, "llm_failed", f"the LLM could not draft a command: {exc}") from None
    command = validate_answer(answer)
    return Draft(command, definition_of(command), model, _dry_runs(endpoint, command))


def validate_answer(answer: str) -> Command:
    """The LLM's answer as a Command, validated by ``build_command``; ``ManageError`` 422
    ``invalid_draft`` with the validation message otherwise."""
    try:
        data = _object(answer)
    except LlmError as exc:
        raise ManageError(422, "invalid_draft", f"the LLM's answer is not usable: {exc}") from None
    if set(data) == {"command"} and isinstance(data["command"], dict):
        data = data["command"]  # some models wrap the object
    try:
        return build_command(data)
    except CommandError as exc:
        raise ManageError(
            422, "invalid_draft", f"the LLM's command is invalid: {exc}", exc.field
        ) from None


def definition_of(command: Command) -> dict:
    """The command as ``POST /api/endpoints/<id>/commands`` takes it."""
    definition = command.to_dict()
    definition.pop("builtin", None)
    return definition


def draft_dry_run_dict(draft: Draft) -> dict:
    """``{"checked", "matched", "runs", "results": [{"source", "event_type", "subjects":
    [{"event_type", "matched", "runs", "reason", "title", "timeline"}]}]}``: the draft's own
    verdict on each delivery (``runs`` false when an earlier command stops first)."""
    results, matched, runs = [], 0, 0
    for run in draft.runs:
        subjects = []
        for subject_type, rows in run.subjects:
            row = next(r for r in rows if r.command.name == draft.command.name)
            matched += row.matched
            runs += row.runs
            subjects.append(
                {
                    "event_type": subject_type,
                    "matched": row.matched,
                    "runs": row.runs,
                    "reason": row.reason,
                    "title": row.title if row.matched else None,
                    "timeline": row.timeline if row.matched else None,
                }
            )
        results.append({"source": run.source, "event_type": run.event_type, "subjects": subjects})
    return {"checked": len(results), "matched": matched, "runs": runs, "results": results}


# ---------------------------------------------------------------------------------------------


def _prompt(endpoint: Endpoint, description: str) -> str:
    """The user message: the request, and what the endpoint receives (event types seen, the
    commands in force, the payload's paths and types: names only, never payload values)."""
    recent = dry_run_choices(endpoint)
    event_types = sorted({d.event_type for d in recent if d.event_type})
    # The newest delivery of each event type (a few types): its paths, shallow ones first.
    shapes: dict[str, dict[str, str]] = {}
    for delivery in recent:
        if delivery.event_type in shapes or len(shapes) >= SHAPE_TYPES:
            continue
        try:
            shapes[delivery.event_type] = _paths(parse_payload(delivery.headers, delivery.body))
        except PayloadError:
            continue
    commands = [
        {
            "name": v.name,
            "trigger": list(v.command.trigger),
            "action": v.command.action,
            "priority": v.command.priority,
        }
        for v in command_views(endpoint)
    ]
    facts = {
        "provider": endpoint.provider,
        "recent_event_types": event_types,
        "commands_in_force": commands,
        "payload_paths_by_event_type": shapes,
    }
    return (
        f"Write the command for this request:\n{description}\n\n"
        "The endpoint, as JSON:\n" + json.dumps(facts, ensure_ascii=False)
    )


def _paths(payload: Any) -> dict[str, str]:
    """``{"label.name": "string", ...}``: the payload's paths (list items by their first) and
    JSON types, the ``PATH_LIMIT`` shallowest (conditions mostly look near the top)."""
    found: list[tuple[str, str]] = []
    kinds = {bool: "boolean", int: "number", float: "number", str: "string"}

    def walk(value: Any, prefix: str) -> None:
        if len(found) >= 20 * PATH_LIMIT:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}{key}.")
        elif isinstance(value, list):
            if value:
                walk(value[0], f"{prefix}0.")
        elif not NOISE.search(prefix[:-1]):
            found.append((prefix[:-1], kinds.get(type(value), "null")))

    walk(payload, "")
    shallow = sorted(found, key=lambda item: item[0].count("."))[:PATH_LIMIT]
    return dict(sorted(shallow))


_FENCED = re.compile(r"```[a-zA-Z]*\s*\n(.*?)\n\s*```", re.DOTALL)


def _object(answer: str) -> dict:
    """The JSON object in the answer: the whole answer, a fenced block in it, or the text from
    its first ``{`` to its last ``}``; ``LlmError`` when none parses."""
    try:
        return json_object(answer)
    except LlmError as first:
        candidates = [m.group(1) for m in _FENCED.finditer(answer)]
        if "{" in answer and "}" in answer:
            candidates.append(answer[answer.index("{") : answer.rindex("}") + 1])
        for text in candidates:
            try:
                return json_object(text)
            except LlmError:
                continue
        raise first from None


def _dry_runs(endpoint: Endpoint, command: Command) -> list[DryRun]:
    """The draft dry-run over the newest accepted deliveries, or the shipped samples when the
    endpoint has none yet; a delivery that cannot be dry-run is left out."""
    runs = []
    recent = dry_run_choices(endpoint)[:DRAFT_DRY_RUNS]
    subjects = (
        [{"delivery_pk": d.id} for d in recent]
        if recent
        else [{"fixture": name} for name in sample_names(endpoint.provider)[:DRAFT_DRY_RUNS]]
    )
    for subject in subjects:
        try:
            runs.append(dry_run(endpoint, draft=command, **subject))
        except ManageError:
            continue
    return runs
