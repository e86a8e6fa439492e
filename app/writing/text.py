"""Small text rules the templates apply as filters (``app/writing/builtin.py`` registers them).

Every function takes anything (None, numbers, datetimes, user text) and gives a string, or
None where the docstring says so; none of them raises on odd input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
#: Lines of an attached file worth quoting.
TELLING_LINE = re.compile(
    r"\b(error|fail(ed|ure)?|exception|fatal|denied|refused|timed? ?out|panic|expired?)\b",
    re.IGNORECASE,
)


def text(value: Any) -> str:
    """``value`` as a stripped string ("" for None)."""
    return str(value).strip() if value is not None else ""


def moment(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string; None for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def when(value: Any) -> str:
    """``2026-11-20 09:00 UTC`` ("" without a time)."""
    at = moment(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else ""


def day(value: Any) -> str:
    """``20 November 2026``, for people outside the team ("" without a time)."""
    at = moment(value)
    return f"{at.astimezone(UTC).day} {at.astimezone(UTC):%B %Y}" if at else ""


def _minute_or_more(seconds: Any) -> int | None:
    try:
        seconds = int(seconds or 0)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 60 else None


def duration(seconds: Any) -> str:
    """``2 h 5 min``, ``1 d 1 h``; "" under a minute."""
    seconds = _minute_or_more(seconds)
    if seconds is None:
        return ""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes and not days else "",
    ]
    return " ".join(p for p in parts if p)


def plain_duration(seconds: Any) -> str:
    """``about three hours``, for people outside the team; "" under a minute."""
    seconds = _minute_or_more(seconds)
    if seconds is None:
        return ""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            number = round(seconds / size)
            return f"about {count(number)} {unit}{'s' if number != 1 else ''}"
    return ""


def count(number: int) -> str:
    """``3`` → ``three`` (words up to ten, digits beyond)."""
    return NUMBER_WORDS[number] if 0 <= number < len(NUMBER_WORDS) else str(number)


def one_line(value: Any, limit: int = 240) -> str:
    """The text on one line (Markdown list items must not break), cut at ``limit``."""
    line = re.sub(r"\s+", " ", text(value))
    if len(line) > limit:
        line = line[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return line


def sentence(value: Any, limit: int = 400) -> str:
    """One line ending with a full stop (or the punctuation it already has)."""
    line = one_line(value, limit)
    if line and line[-1] not in ".!?…:":
        line += "."
    return line


def clause(value: Any, limit: int = 400) -> str:
    """One line without a trailing full stop, for use inside a sentence."""
    return one_line(value, limit).rstrip(".")


def inline(value: Any) -> str:
    """Text from people or payloads, safe inside one Markdown line: one line, no code marks
    (no accidental headings or lists; the console renders Markdown without raw HTML and
    cleans it with nh3, ``app/markdown.py``)."""
    return one_line(value).replace("`", "'")


def blockquote(value: Any, limit: int = 2000) -> str:
    """Markdown from a source (an issue body) as a quote: every line behind ``> ``, cut
    after ``limit`` characters ("…" marks the cut), so its headings and lists stay inside
    the quote and never become the document's own sections."""
    body = text(value)
    if len(body) > limit:
        body = body[: limit - 1].rstrip() + "…"
    return "\n".join(f"> {line}".rstrip() for line in body.splitlines()) if body else ""


def join(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (empty items left out)."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def affix(value: Any, before: str = "", after: str = "") -> str:
    """``before + value + after`` when ``value`` is not empty, else "": an optional piece of
    a sentence (``{{ reason|affix(": ", ".") }}``)."""
    return f"{before}{value}{after}" if value not in (None, "") else ""


def quoted(value: Any) -> str:
    """``“value”`` (Markdown-safe), the way documents name branches."""
    return f"“{inline(value)}”"


def telling_line(value: Any) -> str:
    """The first line of an attachment that says something went wrong ("" if none)."""
    for line in text(value).splitlines():
        if TELLING_LINE.search(line):
            return one_line(line, 160)
    return ""


def plain(value: Any, event_types: Iterable[str] = (), internal: Iterable[str] = ()) -> str:
    """Text for a client: one line, no Markdown code marks, none of the case's event type
    names (``issues.opened``) that people sometimes paste into labels and summaries, and
    none of the team's internal names (``internal_names``): ``internal`` labels (the
    hypotheses) become "one of the possible causes", emails "a colleague", ticket ids
    (``OPS-1234``) "an internal ticket", and ``#12``-style references are left out."""
    line = one_line(value, 800).replace("`", "")
    for event_type in event_types:
        if "." in event_type:
            line = re.sub(rf"\s*\b{re.escape(event_type)}\b", "", line)
    return internal_names(line, internal)


#: An email address; a ticket id (``OPS-1234``, ``INC-77``); a ``#12``-style reference with
#: the word that names it (``case #12``, ``handoff #3``).
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
TICKET_ID = re.compile(r"\b[A-Z][A-Z0-9]{1,9}-\d+\b")
_REF = r"(?:\b(?:case|handoff|ticket|issue|incident)\s+)?(?<!\w)#\d+\b"
REFERENCE = re.compile(rf"\s*\(\s*{_REF}(?:\s*[,;]\s*{_REF})*\s*\)|\s*{_REF}", re.I)


def internal_names(line: str, labels: Iterable[str] = ()) -> str:
    """``line`` without the team's internal names (see ``plain``); longest labels first, so
    a label containing another is replaced whole."""
    for label in sorted({lb for lb in labels if lb.strip()}, key=len, reverse=True):
        line = re.sub(rf"(?<!\w){re.escape(label)}(?!\w)", "one of the possible causes", line,
                      flags=re.I)  # fmt: skip
    line = EMAIL.sub("a colleague", line)
    line = TICKET_ID.sub("an internal ticket", line)
    line = REFERENCE.sub("", line)
    return re.sub(r"\s{2,}", " ", line).strip()
