"""Structured logs: one JSON line per delivery and per job (SPEC §5, observable)."""

import logging
import sys

import structlog

_configured = False


def configure() -> None:
    """Send structlog output as JSON lines to stderr; idempotent."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
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
