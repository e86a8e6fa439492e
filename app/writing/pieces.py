"""Writing that a task does, shown where it belongs: "being written…" until it is there.

A feature whose text is written by a task (a branch summary, an escalation's assessment, a
claim's briefing) registers a ``Piece``: the task kind, how to find the row it is about,
the task's subject for that row, how to ask for it again, and the template that shows the
finished text. Templates then call ``written(case, name, row)``: while the row's latest
task is queued or running that gives a fragment that asks for itself again every
``WRITING_POLL_MS`` (``hx-trigger="load delay:…"``) and is swapped for the text once the
task has finished; a failed task shows its error and, for engineers, a retry button. The
JSON API reports the same through ``task_state`` (``app.tasks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template
from markupsafe import Markup

from app.tasks import Task, latest_task

#: How long the "being written…" fragment waits before asking again (milliseconds).
POLL_MS = 2000


@dataclass(frozen=True)
class Piece:
    """One kind of text a task writes (see the module docstring).

    ``load(case, row_id)`` gives the row of that case or None; ``subject(row)`` the task's
    subject; ``request(row, actor)`` creates the task again (the caller commits);
    ``template`` renders the finished text with ``case`` and ``subject`` (the row).
    """

    name: str
    task_kind: str
    template: str
    load: Callable[[Any, int], Any]
    subject: Callable[[Any], str]
    request: Callable[[Any, Any], Task]


_pieces: dict[str, Piece] = {}


def register_piece(piece: Piece) -> Piece:
    _pieces[piece.name] = piece
    return piece


def get_piece(name: str) -> Piece | None:
    return _pieces.get(name)


def piece_task(piece: Piece, row: Any) -> Task | None:
    """The newest task writing ``row``'s piece (any state), or None."""
    return latest_task(piece.task_kind, piece.subject(row))


def render_piece(case: Any, name: str, row: Any, open: bool = False) -> Markup:
    """The fragment for piece ``name`` of ``row`` (a template global: ``written``);
    ``open``: show the text unfolded (kept across polls)."""
    piece = _pieces[name]
    return Markup(
        render_template(
            "writing/_piece.html",
            piece=piece,
            case=case,
            subject=row,
            task=piece_task(piece, row),
            poll_ms=current_app.config.get("WRITING_POLL_MS", POLL_MS),
            open=bool(open),
        )
    )
