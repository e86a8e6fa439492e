"""Structured logs: one JSON line per delivery and per job (SPEC §5, observable)."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

_configured = False
#: True while ``quiet()`` is on in this context (thread or task).
_quiet: ContextVar[bool] = ContextVar("casehook_logs_quiet", default=False)


def _drop_when_quiet(logger, method_name, event_dict):
    if _quiet.get():
        raise structlog.DropEvent
    return event_dict


def configure() -> None:
    """Send structlog output as JSON lines to stderr; idempotent."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            _drop_when_quiet,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
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
