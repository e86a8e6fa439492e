"""Parsing request bodies into payloads, the same way at ingest and in the worker."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from app.webhooks.providers.base import PayloadError


def parse_payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``.

    GitHub may also send ``application/x-www-form-urlencoded`` with the JSON in a ``payload``
    field (GitHub docs: "Webhook events and payloads", content type). Raises ``PayloadError``
    saying what is wrong when the body is not a JSON object.
    """
    content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    raw: bytes | str = body
    if content_type == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8", errors="replace"))
        if "payload" not in fields:
            raise PayloadError("form-encoded body has no payload field")
        raw = fields["payload"][0]
    if not raw or not raw.strip():
        raise PayloadError("body is empty; a JSON object was expected")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(
            f"body is not valid JSON ({exc.__class__.__name__}: {str(exc)[:120]}); "
            "set the webhook's content type to application/json"
        ) from None
    if not isinstance(payload, dict):
        raise PayloadError(f"body is JSON but a {type(payload).__name__}, not an object")
    return payload
