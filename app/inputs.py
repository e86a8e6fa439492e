"""Reading what clients send: bounded integers and JSON that cannot exhaust the parser.

No input may answer 500. Python's integers have no bound but SQLite's (64-bit) and Postgres'
``integer`` (32-bit) columns do; Python's JSON parser recurses once per nesting level; text
with NUL characters or lone surrogates cannot be stored. Everything here turns such input
into a ``ValueError`` with a message for people, which callers answer with a 400 (or 404
for a path).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, abort, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from app.errors import DomainError
from app.text import refusal

#: The largest id of any table: ids are ``integer`` columns (32-bit signed on Postgres).
MAX_ID = 2**31 - 1
#: JSON nested deeper than this (objects and arrays) is refused: no real payload comes
#: near it, and Python's parser would run out of stack at about a thousand.
MAX_JSON_DEPTH = 64


class InputError(DomainError, ValueError):
    """A value a client sent cannot be used; the message says why, for people (400)."""

    error = "bad_request"


def bounded_int(value: Any, name: str, minimum: int = 1, maximum: int = MAX_ID) -> int:
    """``value`` (an int, or a string of ASCII digits with an optional sign) as an int from
    ``minimum`` to ``maximum``; ``InputError`` naming ``name`` otherwise.

    Only ASCII digits: ``"²".isdigit()`` is true but ``int("²")`` raises, and ``int`` reads
    Arabic-Indic digits that nobody means in a URL.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"{name} must be a whole number from {minimum} to {maximum}", field=name)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 20:
            raise InputError(
                f"{name} must be a whole number from {minimum} to {maximum}", field=name
            )
        value = int(text)
    if not minimum <= value <= maximum:
        raise InputError(f"{name} must be a whole number from {minimum} to {maximum}", field=name)
    return value


#: The last page any list may ask for: beyond it ``OFFSET`` means nothing but work.
MAX_PAGE = 100_000


def page_number(args: Any) -> int:
    """The ``page`` query argument of ``args`` (1 when absent or empty); ``InputError`` when it
    is not a whole number from 1 to ``MAX_PAGE``."""
    value = args.get("page", "")
    return bounded_int(value, "page", 1, MAX_PAGE) if str(value).strip() else 1


def as_id(value: Any) -> int | None:
    """``value`` as a row id (1 to ``MAX_ID``, from an int or ASCII digits), or None."""
    try:
        return bounded_int(value, "id")
    except InputError:
        return None


def id_arg(value: str) -> int:
    """For ``request.args.get(name, type=id_arg)``: an id, else ``ValueError`` (which makes
    Werkzeug return the default)."""
    return bounded_int(value, "id")


class IdConverter(IntegerConverter):
    """``<int:...>`` in routes: at most ``MAX_ID`` by default, so that a path with a huge
    number is a 404 rather than an overflow in the database driver."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def load_json(raw: str | bytes, max_depth: int = MAX_JSON_DEPTH, strict_text: bool = False) -> Any:
    """Parse ``raw`` as JSON; ``InputError`` when it is not JSON or is nested deeper than
    ``max_depth`` objects and arrays, and, with ``strict_text``, when a string (or key) has
    a NUL character or a lone surrogate (see ``app.text.refusal``).

    Nesting is checked without recursion after parsing; JSON too deep for the parser itself
    (about a thousand levels) is refused from its ``RecursionError``.
    """
    try:
        document = json.loads(raw)
    except RecursionError:
        raise InputError(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InputError(f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    _check(document, max_depth, strict_text)
    return document


def _check(document: Any, max_depth: int, strict_text: bool) -> None:
    if not strict_text:
        _check_depth(document, max_depth)
        return
    stack = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= max_depth:
                raise InputError(f"nested more than {max_depth} levels deep")
            children = node.values() if isinstance(node, dict) else node
            if strict_text:
                stack.extend((child, depth + 1) for child in children)
                if isinstance(node, dict):
                    stack.extend((key, depth + 1) for key in node)
            else:  # only containers can be too deep
                stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
        elif strict_text and isinstance(node, str) and (why := refusal(node)):
            raise InputError(f"a string in it {why}")


def _check_depth(document: Any, max_depth: int) -> None:
    """Only the nesting, a level at a time: one list comprehension per container and no
    tuple per child, about six times faster than the general walk on a webhook body (it
    runs on every delivery, at ingest and in the worker)."""
    level = [document] if type(document) is dict or type(document) is list else []
    depth = 0
    while level:
        if depth >= max_depth:
            raise InputError(f"nested more than {max_depth} levels deep")
        depth += 1
        deeper: list = []
        for node in level:
            children = node.values() if type(node) is dict else node
            deeper += [c for c in children if type(c) is dict or type(c) is list]
        level = deeper


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading request bodies with ``load_json(strict_text=True)``: too deep,
    NULs and lone surrogates are a ``ValueError``, which ``get_json`` turns into a 400 (or
    None with ``silent=True``)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s, strict_text=True)


def refuse_unstorable_text() -> None:
    """``before_request``: 400 when the path, a query argument or a form field (outside the
    inbound webhooks, which store what they get) has a NUL character, which no database
    text column takes and nobody types. Lone surrogates cannot arrive this way: Werkzeug
    decodes URLs and forms with replacement."""
    if request.path.startswith("/webhooks/"):
        return
    fields = [("path", request.path)]
    fields += [(name, value) for name, value in request.args.items(multi=True)]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = request.form
        except RequestEntityTooLarge:
            return  # the view answers the 413, in its own words
        fields += [(name, value) for name, value in form.items(multi=True)]
    for name, value in fields:
        # A multipart part whose name holds a line break arrives under the name None.
        name, value = name or "", value or ""
        if why := refusal(name) or refusal(value):
            abort(400, description=f"{name[:40]!r} {why}")


def init_app(app: Flask) -> None:
    """Bounded ``<int:>`` route ids, strict JSON bodies, the NUL check; call before any
    blueprint is registered (converters are bound when rules are added)."""
    app.url_map.converters["int"] = IdConverter
    app.json = StrictJSONProvider(app)
    app.before_request(refuse_unstorable_text)
