"""Structured logs: one JSON line per delivery, job, task attempt and outbound request
(SPEC §5, observable).

Ids that say what a line is about (``delivery_pk``, ``case_id``, ``task_id``,
``correlation_id``) are bound for a stretch of work with ``bound(...)`` and added to every
line written meanwhile. Values under names that sound like credentials (``secret``,
``token``, ``password``, ``authorization``, ``cookie``, ``api_key``, ...) and bearer tokens
inside text are replaced by ``[redacted]`` before a line is written, whoever logs it.
"""

import functools
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

_configured = False
#: True while ``quiet()`` is on in this context (thread or task).
_quiet: ContextVar[bool] = ContextVar("casehook_logs_quiet", default=False)


def _drop_when_quiet(logger, method_name, event_dict):
    if _quiet.get():
        raise structlog.DropEvent
    return event_dict


#: Keys whose string values are never written (matched anywhere in the key, any case).
SECRET_KEYS = re.compile(
    r"secret|token|passw|authori[sz]ation|cookie|api[_-]?key|credential|private[_-]?key",
    re.IGNORECASE,
)
#: Credentials inside free text (an error message quoting a header or a URL).
SECRET_TEXT = re.compile(
    r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}|(//[^/\s:@]+):[^@\s/]+@"
)
REDACTED = "[redacted]"


#: What every ``SECRET_TEXT`` match holds (whitespace after the scheme, or the ``@`` of a
#: URL's credentials): a string without either is let through without the longer search.
_SECRET_TEXT_HINT = re.compile(r"[\s@]")


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    # Log keys are a small fixed set: search each once per process, not once per line.
    return SECRET_KEYS.search(key) is not None


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if _secret_key(key):
            return REDACTED
        return SECRET_TEXT.sub(_redact_match, value) if _SECRET_TEXT_HINT.search(value) else value
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if isinstance(value, bytes) and _secret_key(key):
        return REDACTED  # numbers (max_tokens=500) say nothing secret and stay
    return value


def _redact_match(match: re.Match) -> str:
    if match.group(1):
        return f"{match.group(1)} {REDACTED}"
    return f"{match.group(2)}:{REDACTED}@"


def redact_secrets(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: credentials out of every line (see the module docstring)."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Add ``ids`` (None values left out) to every line logged in this context while the
    block runs: ``with bound(task_id=task.id, case_id=12): ...``. On the way out the ids
    are as they were before, including any ``bind`` inside the block."""
    before = structlog.contextvars.get_contextvars()
    bind(**ids)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**before)


def bind(**ids: Any) -> None:
    """Add ``ids`` (None values left out) to the lines logged from here on in this context;
    inside ``bound``, until its block ends."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})


def configure() -> None:
    """Send structlog output as JSON lines to stderr; idempotent."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            _drop_when_quiet,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True


log = structlog.get_logger("casehook")


@contextmanager
def quiet() -> Iterator[None]:
    """Drop Casehook's log lines in this context while it lasts: a CLI command that sends
    requests in process (``flask demo``) prints sentences for people, not JSON lines."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)
