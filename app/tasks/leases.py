"""Named leases in the database: one holder at a time, lost when the holder stops renewing.

A lease outlives nothing but its ``expires_at``: a worker killed with ``kill -9`` simply
stops renewing, and another takes the lease once it has expired. Each call is its own short
transaction on a pooled connection (not the ORM session), so callers must not be inside a
write transaction of their own (on SQLite it would wait for itself).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app import clock
from app.extensions import db
from app.ids import new_id
from app.tasks.models import Lease

_table = Lease.__table__
_owner: str | None = None


def process_owner() -> str:
    """This process's name as a lease holder: ``host:pid:random`` (a pid can be reused)."""
    global _owner
    if _owner is None or _owner.split(":")[1] != str(os.getpid()):
        _owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{new_id()[-6:]}"
    return _owner


def acquire(name: str, ttl_seconds: float, owner: str | None = None) -> bool:
    """Take (or renew) the lease ``name`` for ``ttl_seconds``; False when another holder's
    lease has not expired yet."""
    owner = owner or process_owner()
    now = clock.now()
    expires = now + timedelta(seconds=ttl_seconds)
    with db.engine.begin() as connection:
        taken = connection.execute(
            _table.update()
            .where(_table.c.name == name)
            .where((_table.c.owner == owner) | (_table.c.expires_at < now))
            .values(owner=owner, expires_at=expires)
        ).rowcount
    if taken:
        return True
    try:
        with db.engine.begin() as connection:
            connection.execute(_table.insert().values(name=name, owner=owner, expires_at=expires))
        return True
    except IntegrityError:
        return False  # someone holds it (or took it between our two statements)


def release(name: str, owner: str | None = None) -> None:
    """Give the lease up at once (only if we hold it)."""
    owner = owner or process_owner()
    with db.engine.begin() as connection:
        connection.execute(
            _table.update()
            .where(_table.c.name == name, _table.c.owner == owner)
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )


def holders(prefix: str) -> dict[str, str]:
    """``{lease name: owner}`` of the unexpired leases whose name starts with ``prefix``."""
    with db.engine.connect() as connection:
        rows = connection.execute(
            db.select(_table.c.name, _table.c.owner).where(
                _table.c.name.startswith(prefix, autoescape=True),
                _table.c.expires_at >= clock.now(),
            )
        ).all()
    return {name: owner for name, owner in rows}
