"""Console: the "being written…" fragments (``app/writing/pieces.py``) and their retry."""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask_login import current_user

from app.accounts.auth import require_role
from app.cases.models import Case
from app.extensions import db
from app.templating import htmx_response
from app.writing.pieces import Piece, get_piece, render_piece

bp = Blueprint("writing", __name__)
bp.add_app_template_global(render_piece, "written")


@bp.get("/cases/<int:case_id>/writing/<name>/<int:row_id>")
@require_role("viewer")
def piece(case_id: int, name: str, row_id: int):
    """The piece's fragment: "being written…" (polling), the text, or the failure."""
    case, found, row = _find(case_id, name, row_id)
    return htmx_response(render_piece(case, found.name, row, open=request.args.get("open") == "1"))


@bp.post("/cases/<int:case_id>/writing/<name>/<int:row_id>/retry")
@require_role("engineer")
def retry(case_id: int, name: str, row_id: int):
    """Ask for the piece again (a new task unless one is on its way); the fragment."""
    case, found, row = _find(case_id, name, row_id)
    found.request(row, current_user._get_current_object())
    db.session.commit()
    return htmx_response(render_piece(case, found.name, row))


def _find(case_id: int, name: str, row_id: int) -> tuple[Case, Piece, object]:
    found = get_piece(name)
    if found is None:
        abort(404, description=f"nothing called {name!r} is written for a case")
    case = db.get_or_404(Case, case_id, description=f"there is no case #{case_id}")
    row = found.load(case, row_id)
    if row is None:
        abort(404, description=f"case #{case_id} has no {name} {row_id}")
    return case, found, row
