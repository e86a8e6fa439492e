"""Parsing request bodies into payloads, the same way at ingest and in the worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from app.inputs import MAX_JSON_DEPTH, InputError, load_json
from app.webhooks.providers.base import PayloadError


def parse_payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``.

    GitHub may also send ``application/x-www-form-urlencoded`` with the JSON in a ``payload``
    field (GitHub docs: "Webhook events and payloads", content type). Raises ``PayloadError``
    saying what is wrong when the body is not a JSON object or is nested more than
    ``MAX_JSON_DEPTH`` levels deep. Text inside is kept as it came (NULs, lone surrogates):
    ``app.text.storable`` cleans what reaches a column.
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
        payload = load_json(raw, MAX_JSON_DEPTH)
    except InputError as exc:
        hint = (
            "" if "nested" in str(exc) else "; set the webhook's content type to application/json"
        )
        raise PayloadError(f"body is {exc}{hint}") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"body is JSON but a {type(payload).__name__}, not an object")
    return payload
