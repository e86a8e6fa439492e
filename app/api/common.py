"""What several API modules share: the case from the URL, the JSON body."""

from __future__ import annotations

from flask import abort

from app.api.spec import SEND_JSON_OBJECT, _refusal
from app.cases.models import Case
from app.extensions import db

__all__ = ["SEND_JSON_OBJECT", "case_or_404", "json_body"]


def case_or_404(case_id: int) -> Case:
    return db.get_or_404(Case, case_id, description=f"there is no case {case_id}")


# -- for modules not yet described with @operation (app/api/spec.py) -----------------------


def json_body(message: str = SEND_JSON_OBJECT) -> dict:
    """The JSON object sent; 400 with ``message`` when the body is not one, saying why when
    the JSON itself was refused (nested too deep, a NUL or a lone surrogate in a string).
    Described modules declare a ``body=`` model instead."""
    from flask import request

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description=message + _refusal())
    return body
