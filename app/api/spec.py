"""The API described once: pydantic models validate each request, build each answer and make
the OpenAPI 3.1 document (``GET /api/openapi.json``, read by people at ``/api/docs``).

A view declares what it reads and answers with ``@operation`` (below ``@require_role``):

    @bp.get("/cases/<int:case_id>")
    @require_role("viewer")
    @operation(responses={200: CaseDetail}, tag="cases")
    def get_case(case_id: int) -> CaseDetail: ...

``query=`` and ``body=`` models are parsed before the view runs and passed to it as the
``query`` and ``body`` keyword arguments; what they refuse is a 400 ``{"error":
"invalid_input", "detail", "field"}``. The view returns a model instance (or ``(model,
status)``); the instance must be of the model declared for that status, so every answer
matches the published schema. A view may still return a ``Response`` of its own (a file, a
401 with ``WWW-Authenticate``); list it in ``responses`` with ``None`` or a model.
Refusals are ``DomainError``s (``app/errors.py``), answered by the one handler.

pydantic's JSON Schema is draft 2020-12, which is what OpenAPI 3.1 uses, so the models go
into ``components.schemas`` as they are.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from app.api.schemas import ErrorBody
from app.errors import DomainError
from app.inputs import MAX_ID, InputError, load_json

#: What a request without a JSON object body is told.
SEND_JSON_OBJECT = "send a JSON object (Content-Type: application/json)"

Mode = Literal["validation", "serialization"]


class InvalidInput(DomainError):
    """The query or body does not match the operation's schema (400); ``field`` is the
    dotted path of the first input at fault."""

    error = "invalid_input"


@dataclass
class Operation:
    """What ``@operation`` recorded about a view, for the OpenAPI document."""

    responses: dict[int, type[BaseModel] | None]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    tag: str | None = None
    summary: str = ""
    description: str = ""
    extra_statuses: tuple[int, ...] = field(default_factory=tuple)
    #: Other request media types than JSON: media type → JSON Schema (e.g. multipart).
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Answers that are files, not JSON: status → media type (``*/*``: whatever was stored).
    files: dict[int, str] = field(default_factory=dict)


def operation(
    *,
    responses: dict[int, type[BaseModel] | None],
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    tag: str | None = None,
    parse_body_first: bool = True,
    forms: dict[str, dict[str, Any]] | None = None,
    files: dict[int, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a view's ``query`` and ``body`` models and its answers by status (see the
    module docstring). The view's docstring becomes the operation's summary (first line)
    and description.

    ``parse_body_first=False``: the view calls ``parse_body(model)`` itself, e.g. after
    checking a token of its own, so that strangers learn nothing from validation errors.
    ``forms``: request media types the view also reads (``{"multipart/form-data": schema}``),
    described beside the JSON body; ``files``: statuses whose answer is a file of that media
    type (declare them with ``None`` in ``responses``).
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.cleandoc(view.__doc__ or "")
        summary, _, description = doc.partition("\n")
        op = Operation(
            responses=responses,
            query=query,
            body=body,
            tag=tag,
            summary=summary.strip(),
            description=description.strip(),
            forms=dict(forms or {}),
            files=dict(files or {}),
        )

        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            if query is not None:
                kwargs["query"] = parse_query(query)
            if body is not None and parse_body_first:
                kwargs["body"] = parse_body(body)
            return answer(op, view(*args, **kwargs))

        run.api_operation = op  # type: ignore[attr-defined]
        return run

    return decorate


# -- requests --------------------------------------------------------------------------------


def parse_query(model: type[BaseModel]) -> BaseModel:
    """The query string as ``model``; a list field takes every value of its name."""
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in request.args:
            continue
        values = request.args.getlist(key)
        data[key] = values if _is_list(info.annotation) else values[0]
    return validate(model, data)


def parse_body(model: type[BaseModel]) -> BaseModel:
    """The JSON object sent, as ``model``; 400 when it is not a JSON object (saying why the
    JSON itself was refused) or does not match."""
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        raise InvalidInput(SEND_JSON_OBJECT + _refusal(), error="invalid_json")
    return validate(model, document)


def validate(model: type[BaseModel], data: Any) -> BaseModel:
    """``data`` as ``model``; ``InvalidInput`` naming the fields at fault otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, getattr(model, "hints", {})) from None


def invalid(exc: ValidationError, hints: dict[str, str] | None = None) -> InvalidInput:
    """One 400 for pydantic's errors: every problem in ``detail``, the first in ``field``.
    ``hints`` (a ``Body`` model's ``hints`` class attribute) says what to do instead of
    sending an unknown field."""
    problems, first = [], None
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        first = first or where or None
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "is not a field of this request"
            if hint := (hints or {}).get(where):
                message += f"; {hint}"
        elif error["type"] == "value_error":  # our own sentence (e.g. from bounded_int)
            message = str(error.get("ctx", {}).get("error") or message)
            if message.startswith(str(error["loc"][-1]) + " ") if error["loc"] else False:
                problems.append(message)
                continue
        problems.append(f"{where}: {message}" if where else message)
    return InvalidInput("; ".join(problems), field=first)


def _refusal() -> str:
    if not request.is_json or not request.get_data():
        return ""
    try:
        load_json(request.get_data(), strict_text=True)
    except InputError as exc:
        return f"; the body is {exc}"
    return ""


def _is_list(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", None)
    return origin in (list, tuple, set) or annotation in (list, tuple, set)


# -- answers ---------------------------------------------------------------------------------


def answer(op: Operation, result: Any) -> Any:
    """The view's result as JSON with its status, checked against the declared model."""
    if isinstance(result, Response):
        return result
    status = next(code for code in op.responses if 200 <= code < 300)
    if isinstance(result, tuple):
        result, status = result
    if status not in op.responses:
        raise TypeError(f"status {status} is not declared for this operation")
    model = op.responses[status]
    if model is None:
        return Response(status=status)
    if not isinstance(result, model):
        # A bug: the answer would not match the published schema.
        raise TypeError(f"expected a {model.__name__} for {status}, got {type(result).__name__}")
    return jsonify(result.model_dump(mode="json", by_alias=True)), status


# -- the OpenAPI document --------------------------------------------------------------------


def openapi_document(app: Flask, title: str, version: str) -> dict[str, Any]:
    """OpenAPI 3.1 for every view of the ``api`` blueprint declared with ``@operation``."""
    operations = []  # (path, method, rule, view, Operation)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        op = getattr(view, "api_operation", None)
        if op is None or not rule.endpoint.startswith("api."):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations.append((rule, method.lower(), view, op))

    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorBody, "serialization")]
    for _, _, _, op in operations:
        wanted += [(m, "validation") for m in (op.query, op.body) if m is not None]
        wanted += [(m, "serialization") for m in op.responses.values() if m is not None]
    wanted = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    components = top.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for rule, method, view, op in operations:
        path, parameters = _path(rule)
        if op.query is not None:
            parameters += _query_parameters(op.query, refs[(op.query, "validation")], components)
        entry: dict[str, Any] = {
            "operationId": rule.endpoint.removeprefix("api."),
            "summary": op.summary,
            "description": op.description,
            "tags": [op.tag] if op.tag else [],
            "parameters": parameters,
            "responses": _responses(op, refs),
        }
        role = getattr(view, "required_role", None)
        entry["security"] = [{"bearerToken": []}, {"session": []}] if role else []
        if role:
            entry["x-required-role"] = role
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": refs[(op.body, "validation")]},
                    **{media: {"schema": schema} for media, schema in op.forms.items()},
                },
            }
        paths.setdefault(path, {})[method] = entry
    _unique_operation_ids(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
    }


def _path(rule: Any) -> tuple[str, list[dict[str, Any]]]:
    """``/api/cases/<int:case_id>`` as ``/api/cases/{case_id}`` and its path parameters."""
    parameters = []
    for converter, name in _VARIABLE.findall(rule.rule):
        schema: dict[str, Any] = {"type": "string"}
        if converter == "int":
            schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _VARIABLE.sub(lambda m: "{" + m.group(2) + "}", rule.rule), parameters


#: A variable of a Werkzeug rule: ``<name>``, ``<int:name>``, ``<any(a, b):name>``.
_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _query_parameters(
    model: type[BaseModel], ref: dict[str, str], components: dict[str, Any]
) -> list[dict[str, Any]]:
    schema = components[ref["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null({k: v for k, v in prop.items() if k != "title"})
        description = prop.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        if prop.get("type") == "array":
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query argument's schema without pydantic's ``null`` branch: a query string cannot
    send null, an optional argument is left out instead."""
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1 and len(schema["anyOf"]) == 2:
        schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]}
    if schema.get("default", 0) is None:
        schema.pop("default")
    return schema


def _responses(op: Operation, refs: dict) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if model is not None:
            entry["content"] = {"application/json": {"schema": refs[(model, "serialization")]}}
        elif status in op.files:
            # OpenAPI 3.1: a file is a string of that media type (no "format: binary").
            media = op.files[status]
            schema = {"type": "string"} | ({} if "*" in media else {"contentMediaType": media})
            entry["content"] = {op.files[status]: {"schema": schema}}
        responses[str(status)] = entry
    # Every refusal has the same body (app/errors.py): 400, 401, 403, 404, 409, 429, ...
    responses.setdefault(
        "4XX",
        {
            "description": "Refused: the body says what was wrong",
            "content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}},
        },
    )
    return responses


def _unique_operation_ids(paths: dict[str, dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for methods in paths.values():
        for entry in methods.values():
            base = entry["operationId"]
            seen[base] = seen.get(base, 0) + 1
            if seen[base] > 1:
                entry["operationId"] = f"{base}_{seen[base]}"
