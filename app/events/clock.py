"""This installation's node id, Lamport clock and event positions (the ``event_node`` row).

``stamp`` hands out ``(seq, lamport, node_id)`` with one ``UPDATE … SET seq = seq + 1,
clock = clock + 1 RETURNING …`` on the writer's own connection, inside its transaction, so:

* two processes (web, workers) never get the same value: the row is updated atomically;
* on Postgres the row stays locked until the writer commits or rolls back, so event writers
  take turns at their commit and **seq order is commit order**.
  A reader that pages by ``seq`` (``app/events/stream.py``) can therefore never miss an
  event committed later with a smaller seq, with no high-water mark or safety window.
  The price is that on Postgres the commits of transactions writing case events are
  serialised (each holds the row from its stamp to its commit: one UPDATE and the commit
  itself); SQLite serialises every writer anyway. A Postgres sequence would avoid even that
  but hands out values out of commit order, which would then need xid/snapshot tracking
  (``pg_snapshot_xmin``) in every reader.

So writers stamp last, just before the commit (the ``before_commit`` hook in
``record.py``): the clock row is the last lock they take, which keeps it from ever being
part of a deadlock with row locks taken earlier in the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.events.models import EventNode
from app.extensions import db
from app.ids import new_id

_node = EventNode.__table__


def _ensure_row(connection: Any) -> None:
    """Create the node row (a new node id) if it is missing; two creators: one wins."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        insert(_node)
        .values(id=1, node_id=new_id(), clock=0, seq=0, refused=0)
        .on_conflict_do_nothing(index_elements=["id"])
    )


def stamp(connection: Any, count: int = 1) -> tuple[int, int, str]:
    """Take the next ``count`` positions on ``connection`` (the writer's, in its
    transaction; the row stays locked until it ends) in one statement: returns the last
    ``(seq, lamport, node_id)``; the ``count`` events get ``seq - count + 1`` … ``seq``
    (and the Lamport values alike), as ``count`` single stamps in a row would give."""
    statement = text(
        "UPDATE event_node SET seq = seq + :n, clock = clock + :n WHERE id = 1"
        " RETURNING seq, clock, node_id"
    )
    row = connection.execute(statement, {"n": int(count)}).first()
    if row is None:
        _ensure_row(connection)
        row = connection.execute(statement, {"n": int(count)}).first()
    return int(row[0]), int(row[1]), str(row[2])


def observe(remote_clock: int) -> int:
    """Move the Lamport clock past ``remote_clock`` (an event received from another node):
    the next local event gets a larger value. In the caller's session; returns the clock."""
    connection = db.session.connection()
    greatest = "GREATEST" if connection.dialect.name == "postgresql" else "MAX"
    statement = text(
        f"UPDATE event_node SET clock = {greatest}(clock, :remote) WHERE id = 1 RETURNING clock"
    )
    row = connection.execute(statement, {"remote": int(remote_clock)}).first()
    if row is None:
        _ensure_row(connection)
        row = connection.execute(statement, {"remote": int(remote_clock)}).first()
    return int(row[0])


def count_refused(connection: Any) -> None:
    """One more event refused for not matching its schema (production)."""
    _ensure_row(connection)
    connection.execute(text("UPDATE event_node SET refused = refused + 1 WHERE id = 1"))


def node_info() -> dict[str, Any]:
    """``{"node_id", "clock", "seq", "refused"}`` of this installation (creating the row if
    needed, committed). Outside any write transaction of the caller's."""
    query = db.select(_node.c.node_id, _node.c.clock, _node.c.seq, _node.c.refused).where(
        _node.c.id == 1
    )
    with db.engine.begin() as connection:
        row = connection.execute(query).first()
        if row is None:
            _ensure_row(connection)
            row = connection.execute(query).first()
    return {"node_id": row[0], "clock": row[1], "seq": row[2], "refused": row[3]}


def node_id() -> str:
    """This installation's node id (made once, kept in the database)."""
    return node_info()["node_id"]
