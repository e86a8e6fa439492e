"""The LLM writer: any OpenAI-compatible chat-completions endpoint, with the built-in writer
standing by.

Settings (app config first, so tests can set them; else the environment):

- ``LLM_BASE_URL``: e.g. ``https://api.openai.com`` or ``http://127.0.0.1:8080`` (a trailing
  ``/v1`` is fine). Unset: the built-in writer only.
- ``LLM_MODEL``: the model to ask for (required with ``LLM_BASE_URL``).
- ``LLM_API_KEY``: sent as ``Authorization: Bearer …`` when set.
- ``LLM_TIMEOUT_SECONDS``: per request, default 30.

Every document is one ``POST {base}/v1/chat/completions`` with the case's facts as JSON in
the prompt. Structured answers (the KB article, the assessment) are asked for as JSON and
validated. Any failure — connection, timeout, non-2xx, an answer that is not what was asked
for — falls back to the built-in writer for that document, logs why
(``writer.llm_fallback``), and returns the built-in writer's ``Written`` with
``writer="builtin"`` and the ``fallback_reason``.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import httpx
from flask import current_app, has_app_context

from app.logs import log
from app.writing import KINDS, Written
from app.writing.builtin import BuiltinWriter, internal_names, plain_words, render_kb_article
from app.writing.facts import Facts

DEFAULT_TIMEOUT_SECONDS = 30.0
#: Longest text of one attachment sent to the model (characters).
ATTACHMENT_LIMIT = 4000

SYSTEM = (
    "You are a senior support engineer writing documentation for a case that your team "
    "worked. Use only the facts in the JSON you are given: never invent names, times, causes, "
    "commands or numbers, and when a fact is missing leave the sentence out. Never write "
    "placeholders, TODOs or bracketed blanks. Write clearly and concisely."
)
PROMPTS = {
    "ticket_notes": (
        "Write the ticket notes for this resolved case in Markdown, with the sections "
        "'## Problem', '## Diagnostic steps' (each hypothesis in order with what was tried and "
        "what it concluded; dead ends with their reasons), '## Resolution' and "
        "'## Recommendations'. Answer with the Markdown only."
    ),
    "kb_article": (
        "Write a knowledge-base article for this resolved case. Answer with one JSON object "
        'only: {"title": str, "symptoms": [str], "root_cause": str, "resolution_steps": [str], '
        '"rule_out_first": [{"branch": str, "reason": str}], "tags": [str]}. '
        "rule_out_first lists the dead-end branches with their reasons."
    ),
    "client_summary": (
        "Write a summary of this resolved case for the client, in two or three short "
        "paragraphs of plain language: what happened, what was done, and that it is resolved. "
        "No technical jargon: do not mention event types, webhooks, deliveries, branches, "
        "hypotheses, dead ends or escalations, and never name the team's hypotheses, people, "
        "email addresses or internal ticket ids. Answer with the text only."
    ),
    "branch_summary": (
        "Summarise this branch of the investigation in a few Markdown lines: what was tried "
        "and what it concluded. Answer with the Markdown only."
    ),
    "assessment": (
        "This case is being escalated. Assess it from the evidence. Answer with one JSON "
        'object only: {"likely_cause": str, "suggested_steps": [str], "confidence": '
        '"low"|"medium"|"high"}. Untried branches come first in suggested_steps; say plainly '
        "when the cause is not confirmed; confidence reflects how much evidence there is."
    ),
    "briefing": (
        "Someone is claiming this handoff. Write them a short Markdown briefing: where the case "
        "stands, what was tried, dead ends to avoid, what it is waiting on or why it was "
        "escalated, and the next step. Answer with the Markdown only."
    ),
}


class LlmError(Exception):
    """The LLM call failed or answered something unusable; the message says how."""


def llm_settings() -> dict | None:
    """``{"base_url", "model", "api_key", "timeout"}`` when an LLM is configured, else None.

    Reads the app config first, then the environment. ``LLM_BASE_URL`` without
    ``LLM_MODEL`` is logged and ignored (there is no sensible model to guess).
    """

    def setting(key: str) -> str | None:
        value = current_app.config.get(key) if has_app_context() else None
        value = value if value not in (None, "") else os.environ.get(key)
        return str(value).strip() if value not in (None, "") else None

    base_url, model = setting("LLM_BASE_URL"), setting("LLM_MODEL")
    if not base_url:
        return None
    if not model:
        log.warning("writer.llm_unconfigured", detail="LLM_BASE_URL is set but LLM_MODEL is not")
        return None
    try:
        timeout = float(setting("LLM_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_SECONDS
    return {
        "base_url": base_url,
        "model": model,
        "api_key": setting("LLM_API_KEY"),
        "timeout": timeout,
    }


def completions_url(base_url: str) -> str:
    """``{base}/v1/chat/completions``, not doubling a ``/v1`` the base already ends with."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return f"{base}/v1/chat/completions"


class LlmWriter:
    """Writes through the LLM; ``fallback`` (the built-in writer) writes whatever it cannot."""

    name = "llm"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        fallback: Any = None,
    ) -> None:
        self.url = completions_url(base_url)
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.fallback = fallback or BuiltinWriter()

    # The protocol -----------------------------------------------------------------------------
    def branch_summary(self, branch: dict) -> Written:
        return self._text_or_fallback(
            "branch_summary",
            {"branch": _trim_branch(branch)},
            lambda: self.fallback.branch_summary(branch),
        )

    def assessment(self, context: dict) -> Written:
        try:
            answer, model = self._ask("assessment", facts(context))
            return Written(data=_assessment(json_object(answer)), writer="llm", model=model)
        except LlmError as exc:
            return self.fallback.assessment(context).fell_back(self._fell_back("assessment", exc))

    def briefing(self, context: dict, handoff: dict) -> Written:
        return self._text_or_fallback(
            "briefing",
            {**facts(context), "handoff": _jsonable(handoff)},
            lambda: self.fallback.briefing(context, handoff),
        )

    def document(self, kind: str, context: dict, resolution_summary: str) -> Written:
        """One resolution output through the LLM; the built-in writer's on any failure."""
        if kind not in KINDS:
            raise ValueError(f"unknown output kind {kind!r}; one of {', '.join(KINDS)}")
        payload = {**facts(context), "resolution_summary": resolution_summary}
        try:
            answer, model = self._ask(kind, payload)
            if kind == "kb_article":
                data = _kb_data(json_object(answer))
                return Written(render_kb_article(data), data, "llm", model)
            text = _markdown(answer)
            if kind == "client_summary" and plain_words(text):
                raise LlmError(
                    "the client summary uses internal words: " + ", ".join(plain_words(text))
                )
            named = internal_names(text, Facts(context).internal_labels)
            if kind == "client_summary" and named:
                raise LlmError("the client summary names internal things: " + ", ".join(named))
            return Written(text, None, "llm", model)
        except LlmError as exc:
            reason = self._fell_back(kind, exc)
            return self.fallback.document(kind, context, resolution_summary).fell_back(reason)

    # The call ---------------------------------------------------------------------------------
    def _ask(self, task: str, payload: dict) -> tuple[str, str]:
        """``(answer text, model)`` for ``task``; raises ``LlmError`` saying what went wrong."""
        messages = [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": (
                    f"Task ({task}): {PROMPTS[task]}\n\nThe facts, as JSON:\n"
                    + json.dumps(payload, ensure_ascii=False, default=str)
                ),
            },
        ]
        return chat(self.url, self.model, self.api_key, self.timeout, messages, task=task)

    def _text_or_fallback(self, task: str, payload: dict, fallback) -> Written:
        try:
            answer, model = self._ask(task, payload)
            return Written(_markdown(answer), writer="llm", model=model)
        except LlmError as exc:
            return fallback().fell_back(self._fell_back(task, exc))

    def _fell_back(self, task: str, exc: Exception) -> str:
        reason = str(exc)
        log.warning("writer.llm_fallback", task=task, model=self.model, reason=reason)
        return reason


def chat(
    url: str,
    model: str,
    api_key: str | None,
    timeout: float,
    messages: list[dict],
    *,
    task: str,
    response_format: dict | None = None,
) -> tuple[str, str]:
    """One chat completion: ``(answer text, model)``; ``LlmError`` saying what went wrong.

    ``url`` is the full ``…/v1/chat/completions`` (``completions_url``); ``timeout`` in
    seconds. ``response_format`` (e.g. ``{"type": "json_object"}``) is sent when given; a
    server that refuses it (4xx naming ``response_format``) is asked once more without it.
    """
    body: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0.2}
    if response_format:
        body["response_format"] = response_format
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    started, status = time.perf_counter(), None
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        status = response.status_code
        if (
            response_format
            and response.status_code in (400, 422)
            and ("response_format" in response.text)
        ):
            del body["response_format"]
            response = httpx.post(url, json=body, headers=headers, timeout=timeout)
            status = response.status_code
    except httpx.TimeoutException as exc:
        raise LlmError(f"no answer within {timeout:g} s ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise LlmError(f"could not reach {url}: {exc}") from exc
    finally:  # one line per outbound request (the key never: it is in a header)
        ms = round((time.perf_counter() - started) * 1000, 3)
        log.info("outbound.request", target="llm", url=url, task=task,
                 status_code=status, ms=ms)  # fmt: skip
    if not response.is_success:
        raise LlmError(f"{url} answered {response.status_code}: {response.text[:200]}")
    try:
        answer = response.json()
        content = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LlmError(f"the answer is not a chat completion: {response.text[:200]}") from exc
    if not isinstance(content, str) or not content.strip():
        raise LlmError("the answer is empty")
    answered_model = answer.get("model") if isinstance(answer.get("model"), str) else None
    return content, (answered_model or model)


# ---------------------------------------------------------------------------------------------
# What goes in, what comes back


def facts(context: dict) -> dict:
    """The context as compact JSON-ready facts (raw event payloads and long texts trimmed)."""
    context = context or {}
    return _jsonable(
        {
            "case": context.get("case") or {},
            "deliveries": (context.get("deliveries") or [])[:50],
            "branches": [_trim_branch(b) for b in context.get("branches") or []],
            "active_branch_id": context.get("active_branch_id"),
            "handoffs": context.get("handoffs") or [],
            "timeline": [
                {
                    "type": e.get("type"),
                    "at": e.get("created_at"),
                    "by": e.get("actor"),
                    **(
                        {"reason": e["payload"]["reason"]}
                        if (e.get("payload") or {}).get("reason")
                        else {}
                    ),
                }
                for e in (context.get("events") or [])[-100:]
            ],
        }
    )


def _trim_branch(branch: dict) -> dict:
    branch = dict(branch or {})
    notes = []
    for note in branch.get("notes") or []:
        note = dict(note)
        note["attachments"] = [
            {"filename": a.get("filename"), "text": (a.get("text") or "")[:ATTACHMENT_LIMIT]}
            for a in note.get("attachments") or []
        ]
        notes.append(note)
    branch["notes"] = notes
    return branch


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
PLACEHOLDER = re.compile(r"\bTODO\b|\bTBD\b|\[(insert|placeholder|your)[^\]]*\]", re.IGNORECASE)


def _markdown(answer: str) -> str:
    """The answer as Markdown (a wrapping code fence removed); refuses placeholders."""
    text = answer.strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise LlmError("the answer is empty")
    if PLACEHOLDER.search(text):
        raise LlmError("the answer contains a placeholder")
    return text + "\n"


def json_object(answer: str) -> dict:
    """The answer as a JSON object (a wrapping code fence removed); ``LlmError`` otherwise."""
    text = answer.strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise LlmError(f"asked for JSON, got: {answer[:200]}") from exc
    if not isinstance(value, dict):
        raise LlmError("asked for a JSON object, got another JSON value")
    return value


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LlmError(f"{field} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _kb_data(value: dict) -> dict:
    """Validate the KB article's JSON (see ``PROMPTS["kb_article"]``)."""
    for field in ("title", "root_cause"):
        if not isinstance(value.get(field), str) or not value[field].strip():
            raise LlmError(f"the KB article needs a non-empty {field}")
    rule_out = value.get("rule_out_first", [])
    if not isinstance(rule_out, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("branch"), str)
        and isinstance(r.get("reason", ""), str)
        for r in rule_out
    ):
        raise LlmError('rule_out_first must be a list of {"branch", "reason"}')
    data = {
        "title": value["title"].strip(),
        "symptoms": _strings(value.get("symptoms", []), "symptoms"),
        "root_cause": value["root_cause"].strip(),
        "resolution_steps": _strings(value.get("resolution_steps", []), "resolution_steps"),
        "rule_out_first": [
            {"branch": r["branch"].strip(), "reason": (r.get("reason") or "").strip()}
            for r in rule_out
        ],
        "tags": _strings(value.get("tags", []), "tags"),
    }
    if PLACEHOLDER.search(json.dumps(data)):
        raise LlmError("the KB article contains a placeholder")
    return data


def _assessment(value: dict) -> dict:
    cause = value.get("likely_cause")
    if not isinstance(cause, str) or not cause.strip():
        raise LlmError("the assessment needs a likely_cause")
    if value.get("confidence") not in ("low", "medium", "high"):
        raise LlmError("confidence must be low, medium or high")
    return {
        "likely_cause": cause.strip(),
        "suggested_steps": _strings(value.get("suggested_steps", []), "suggested_steps"),
        "confidence": value["confidence"],
    }
