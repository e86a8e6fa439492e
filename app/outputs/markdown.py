"""Rendering outputs' Markdown for the console, safely.

markdown-it-py renders with raw HTML off (HTML in the source stays text), then nh3 keeps only
harmless tags and attributes and drops ``javascript:`` links: outputs carry text from
payloads, notes and (with an LLM) a model, so both layers stay.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
    ["table", "strikethrough"]
)


def render_markdown(text: str | None) -> Markup:
    """Safe HTML for the Markdown ``text``; links get ``rel="noopener noreferrer nofollow"``."""
    return Markup(nh3.clean(_renderer.render(text or ""), link_rel="noopener noreferrer nofollow"))
