"""Markdown from people, payloads and writers (notes, briefings, outputs), rendered safely.

markdown-it-py renders (raw HTML in the source stays text: ``html`` off), then nh3 keeps
only harmless tags and attributes and drops ``javascript:`` links: defence in depth.
Templates use it as the ``markdown`` filter (app/templating.py).
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str | None) -> Markup:
    """HTML for the Markdown ``text`` (links get ``rel="noopener noreferrer nofollow"``)."""
    html = _renderer.render(text or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow"))
