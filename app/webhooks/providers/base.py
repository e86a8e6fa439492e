"""The small interface every provider module implements (SPEC C1)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from app.webhooks.commands import Command


class VerificationError(Exception):
    """A request failed a provider check; ``check`` names it, ``detail`` says it for people.

    ``check`` is one of ``missing_header``, ``bad_signature``, ``stale_timestamp``,
    ``bad_token``; the route answers 401 with both.
    """

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check
        self.detail = detail


class PayloadError(Exception):
    """The request was authentic but cannot be processed (not JSON, no delivery id): 400."""


@dataclass(frozen=True)
class CaseFacts:
    """What a delivery says about the case it belongs to."""

    dedup_key: str | None
    title: str
    severity: str = "info"
    source_url: str | None = None
    #: One line for the timeline: what this delivery says happened.
    summary: str = ""


class Provider:
    """Per-provider knowledge: verify, delivery id, event type, case facts, built-in commands.

    Subclasses set ``name`` and implement the methods; one module per provider.
    """

    name: ClassVar[str]

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``VerificationError`` unless ``body`` was sent by someone holding ``secret``."""
        raise NotImplementedError

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        """The provider's delivery id, stable across its retries; ``PayloadError`` if absent."""
        raise NotImplementedError

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        """The normalised ``resource.action`` event type."""
        raise NotImplementedError

    def immediate_answer(self, event_type: str, payload: dict) -> dict | None:
        """The 200 body for a delivery that only tests the connection (GitHub ``ping``, Slack
        ``url_verification``), answered after verification, stored, never processed; else
        None."""
        return None

    def split(
        self, event_type: str, payload: dict, settings: Mapping[str, Any]
    ) -> list[tuple[str, dict]]:
        """The ``(event type, payload)`` pairs commands run on; one per alert for providers
        that batch several (Alertmanager). ``settings`` are the endpoint's. Default: the
        delivery itself."""
        return [(event_type, payload)]

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        """Dedup key, title, severity and source URL for the case this delivery is about."""
        raise NotImplementedError

    def builtin_commands(self) -> list[Command]:
        """Commands shipped in code for this provider."""
        return []


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``message`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings without leaking where they differ (timing-safe)."""
    return hmac.compare_digest(a.encode(), b.encode())


def text_of(value: Any, default: str = "") -> str:
    """``value`` as a stripped string; None, empty and non-strings fall back to ``default``."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return default


def mapping(value: Any) -> dict:
    """``value`` if it is a JSON object, else ``{}`` (payload fields may be null)."""
    return value if isinstance(value, dict) else {}
