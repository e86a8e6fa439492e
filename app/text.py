"""Text that came from outside, made fit for a database column.

Providers send whatever they like: lone UTF-16 surrogates (``"\\ud800"`` is valid JSON, but
not encodable as UTF-8, so neither SQLite nor Postgres takes it), NUL characters (Postgres
text refuses them) and strings longer than our columns. ``storable`` is the one place such
text is cleaned; the stored delivery body keeps the original, untouched.
"""

from __future__ import annotations

import hashlib
import re

#: A UTF-16 surrogate on its own (in a Python str every surrogate is on its own).
_SURROGATES = re.compile("[\ud800-\udfff]")
#: What marks a cut: the text went on.
ELLIPSIS = "…"
#: Hex digits of the full text's SHA-256 kept after a ``distinct`` cut.
DIGEST_LENGTH = 12


def storable(value: str, limit: int | None, *, distinct: bool = False) -> str:
    """``value`` cleaned for a text column of ``limit`` characters (None: no limit).

    Lone surrogates become U+FFFD, NUL characters are removed, and text over ``limit`` is cut
    to exactly ``limit`` characters ending with "…". With ``distinct`` (keys: dedup keys,
    delivery ids), the cut ends with "…" and the first 12 hex digits of the full text's
    SHA-256, so that two long keys sharing their first ``limit`` characters stay apart and
    the same long key always gives the same value. Text within bounds is returned as it is.
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATES.search(value):
        value = _SURROGATES.sub("\ufffd", value)
    if limit is None or len(value) <= limit:
        return value
    if not distinct:
        return value[: limit - 1] + ELLIPSIS
    digest = hashlib.sha256(value.encode()).hexdigest()[:DIGEST_LENGTH]
    return value[: limit - 1 - DIGEST_LENGTH] + ELLIPSIS + digest


def refusal(value: str) -> str | None:
    """Why ``value`` cannot be taken as it is from a person or a client (the API refuses it
    with a 400), or None when it can: a NUL character or a lone surrogate."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    if match := _SURROGATES.search(value):
        return f"contains a lone UTF-16 surrogate (\\u{ord(match.group()):04x})"
    return None
