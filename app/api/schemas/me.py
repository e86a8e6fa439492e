"""Who the API thinks you are (``/api/me``)."""

from __future__ import annotations

from typing import Literal

from app.api.schemas import Out


class Me(Out):
    id: int
    email: str
    role: str
    authenticated_by: Literal["token", "session"]
