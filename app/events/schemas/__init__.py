"""JSON Schemas of case events: ``<type>.json`` describes the payload of events of that type.

``event_schema(type)`` wraps it in the envelope every event shares (id, seq, Lamport clock,
node, causation, correlation, ...) and is what is validated before storing and what
``GET /api/events/schemas`` publishes. Draft 2020-12; unknown payload keys are allowed
(payloads grow), the listed ones are typed and the required ones must be there.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

try:  # Rust: decides validity in about a microsecond (jsonschema takes 0.1-0.3 ms an event)
    import jsonschema_rs
except ImportError:  # pragma: no cover - a dependency; jsonschema alone gives the same answers
    jsonschema_rs = None

HERE = Path(__file__).resolve().parent
ULID = {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$"}
NULLABLE_TEXT = {"type": ["string", "null"]}


class UnknownEventType(KeyError):
    """No schema file describes events of this type."""


@cache
def event_types() -> tuple[str, ...]:
    """Every event type that has a schema, sorted."""
    return tuple(sorted(p.stem for p in HERE.glob("*.json")))


@cache
def event_schema(type_: str) -> dict[str, Any]:
    """The full schema of a ``type_`` event as published; ``UnknownEventType`` if none."""
    path = HERE / f"{type_}.json"
    if type_ not in event_types():
        raise UnknownEventType(type_)
    payload = json.loads(path.read_text())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:casehook:event:{type_}",
        "title": f"Casehook case event {type_}",
        "type": "object",
        "required": [
            "id",
            "seq",
            "type",
            "case_id",
            "node_id",
            "lamport",
            "causation_id",
            "correlation_id",
            "actor",
            "payload",
            "created_at",
        ],
        "properties": {
            "id": {**ULID, "description": "ULID of the event; sync receivers dedupe on it"},
            "seq": {"type": "integer", "minimum": 1, "description": "position on its node"},
            "type": {"const": type_},
            "case_id": {"type": "integer"},
            "node_id": {**ULID, "description": "the installation that wrote it"},
            "lamport": {"type": "integer", "minimum": 1},
            "causation_id": {**NULLABLE_TEXT, "description": "delivery, task or request id"},
            "correlation_id": {"type": "string", "minLength": 1},
            "delivery_id": NULLABLE_TEXT,
            "event_type": NULLABLE_TEXT,
            "actor": NULLABLE_TEXT,
            "payload": payload,
            "created_at": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    }


@cache
def _validator(type_: str) -> Draft202012Validator:
    schema = event_schema(type_)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def _quick(type_: str) -> Any:
    """A compiled ``jsonschema_rs`` validator of ``type_`` events, or None without it."""
    if jsonschema_rs is None:
        return None
    return jsonschema_rs.validator_for(event_schema(type_))


def problems(document: dict[str, Any]) -> list[str]:
    """What is wrong with ``document`` (an event as published) against its type's schema;
    empty when it is valid. An unknown type is a problem too.

    Every stored event is checked, so the common answer (valid) comes from the compiled
    validator; ``jsonschema`` only words what is wrong (tests hold the two to the same
    answers on every schema)."""
    type_ = document.get("type")
    try:
        validator = _validator(str(type_))
    except UnknownEventType:
        return [f"no schema for event type {type_!r} (add app/events/schemas/{type_}.json)"]
    quick = _quick(str(type_))
    if quick is not None and quick.is_valid(document):
        return []
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(event)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def all_schemas() -> dict[str, dict[str, Any]]:
    """``{type: schema}`` for every event type."""
    return {type_: event_schema(type_) for type_ in event_types()}
