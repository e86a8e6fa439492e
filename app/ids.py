"""Identifiers: ULIDs sort by creation time, which keeps timelines and pages in order."""

from ulid import ULID


def new_id() -> str:
    """A new ULID as its 26-character Crockford base32 string."""
    return str(ULID())
