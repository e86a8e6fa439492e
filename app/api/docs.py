"""``/api/openapi.json`` (OpenAPI 3.1, built from the views' ``@operation`` models) and
``/api/docs``, the same document as a page rendered here: no script, no CDN."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, jsonify, render_template

from app.accounts.auth import public
from app.api import bp
from app.api.spec import openapi_document
from app.security import CONSOLE_HEADERS

TITLE = "Casehook API"


def document() -> dict[str, Any]:
    """The OpenAPI document, built once per app (the routes do not change while it runs)."""
    cached = current_app.extensions.get("casehook_openapi")
    if cached is None:
        version = current_app.config.get("VERSION") or "0.1.0"
        cached = openapi_document(current_app, TITLE, str(version))
        current_app.extensions["casehook_openapi"] = cached
    return cached


@bp.get("/openapi.json")
@public  # a description of the API, no data: tools fetch it before they have a token
def openapi_json():
    """The OpenAPI 3.1 description of the JSON API."""
    return jsonify(document())


@bp.get("/docs")
@public
def docs():
    """The API reference for people: every operation, its parameters, body and answers."""
    spec = document()
    operations = [
        {"path": path, "method": method, **entry}
        for path, methods in spec["paths"].items()
        for method, entry in methods.items()
    ]
    tags = sorted({(op["tags"] or ["other"])[0] for op in operations})
    html = render_template(
        "api/docs.html",
        spec=spec,
        tags=tags,
        operations=operations,
        schemas=spec["components"]["schemas"],
        ref_name=_ref_name,
        pretty=_pretty,
    )
    # A page under /api/, which the console's headers skip: it gets them all the same.
    return html, 200, CONSOLE_HEADERS


def _ref_name(schema: dict[str, Any] | None) -> str | None:
    ref = (schema or {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def _pretty(schema: Any) -> str:
    return json.dumps(schema, indent=2, sort_keys=False)
