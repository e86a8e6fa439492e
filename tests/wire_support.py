"""What the process sends to the database and to Redis, counted where it leaves the process.

``Wire`` traces every pooled DBAPI connection as it is checked out: SQLite through the
driver's trace callback (statements as SQLite runs them, the driver's own ``BEGIN`` and
``COMMIT`` included), Postgres through libpq's protocol trace (every statement, ``BEGIN``
and ``COMMIT`` included, and every round trip: one ``ReadyForQuery`` answer each). Redis
commands are counted per thread at redis-py's connection. SQLAlchemy's events would see
neither a pool's ping, a driver's implicit ``BEGIN``, nor SQL sent on a raw DBAPI
connection; this sees all of them.

Used by tests (``with Wire() as wire: ...``) and by ``bench/ingest_inprocess``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import Counter
from typing import Any

from redis.connection import AbstractConnection
from sqlalchemy import event
from sqlalchemy.pool import Pool


class Wire:
    """Count SQL statements, Postgres round trips and Redis commands while it is on."""

    def __init__(self) -> None:
        self.sqlite_statements: list[str] = []
        self.redis_commands: list[tuple[str, str]] = []  # (thread name, command)
        # As long as the Wire lives: libpq writes to its descriptor.
        self._trace = tempfile.TemporaryFile()  # noqa: SIM115
        self._traced: list[Any] = []
        self._lock = threading.Lock()
        self._patched: dict[str, Any] = {}

    # -- database -----------------------------------------------------------------------

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):  # sqlite3
            dbapi_connection.set_trace_callback(self._sqlite)
        elif hasattr(dbapi_connection, "pgconn") and dbapi_connection not in self._traced:
            self._pg_trace(dbapi_connection)
        else:
            return
        if dbapi_connection not in self._traced:
            self._traced.append(dbapi_connection)

    def _pg_trace(self, connection: Any) -> None:
        from psycopg import pq

        connection.pgconn.trace(self._trace.fileno())
        connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def _pg_flush(self) -> None:
        # libpq writes its trace through a stdio buffer, which only PQuntrace flushes.
        for connection in self._traced:
            if hasattr(connection, "pgconn") and not connection.closed:
                connection.pgconn.untrace()
                self._pg_trace(connection)

    def _sqlite(self, statement: str) -> None:
        with self._lock:
            self.sqlite_statements.append(statement.strip())

    def postgres_messages(self) -> list[str]:
        """libpq's trace so far: one line per protocol message (``F`` sent, ``B`` received)."""
        self._pg_flush()
        # pread: libpq writes at the descriptor's offset, which must stay at the end.
        fd = self._trace.fileno()
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        return data.decode("utf-8", "replace").splitlines()

    def statements(self) -> list[str]:
        """SQL statements run so far, in order: SQLite's as it ran them; Postgres' as sent
        (a ``Query`` message, such as the driver's ``BEGIN``, or an ``Execute`` of the
        extended protocol, named after the statement its ``Bind`` used: psycopg prepares a
        statement it runs often, after which only ``Bind``/``Execute`` go out)."""
        found = list(self.sqlite_statements)
        prepared: dict[str, str] = {}
        bound = ""
        for line in self.postgres_messages():
            parts = line.split("\t", 3)
            if len(parts) < 4 or parts[0] != "F":
                continue
            kind, fields = parts[2], parts[3].strip()
            if kind == "Query":
                found.append(fields.strip('"'))
            elif kind == "Parse":  # "<statement name>" "<SQL>" ...
                name, _, rest = fields.partition('" "')
                prepared[name.strip('"')] = rest.rsplit('"', 1)[0]
            elif kind == "Bind":  # "<portal>" "<statement name>" ...
                name = fields.split(" ", 2)[1].strip('"')
                bound = prepared.get(name, f"(prepared before the trace: {name})")
            elif kind == "Execute":
                found.append(bound)
        return found

    def round_trips(self) -> int:
        """Postgres round trips so far (the server ends each answer with ReadyForQuery)."""
        return sum(1 for line in self.postgres_messages() if "\tReadyForQuery" in line)

    # -- Redis --------------------------------------------------------------------------

    def redis_from(self, thread_name: str | None = None) -> list[str]:
        """Redis commands sent so far (by the thread ``thread_name``, or by any)."""
        return [c for t, c in self.redis_commands if thread_name is None or t == thread_name]

    def _record(self, names: list[str]) -> None:
        thread = threading.current_thread().name
        with self._lock:
            self.redis_commands += [(thread, name) for name in names]

    # -- on and off ---------------------------------------------------------------------

    def __enter__(self) -> Wire:
        event.listen(Pool, "checkout", self._checkout)
        send_command = AbstractConnection.send_command
        pack_commands = AbstractConnection.pack_commands
        wire = self

        def counted_send_command(connection, *args, **kwargs):
            wire._record([_name(args[0])] if args else [])
            return send_command(connection, *args, **kwargs)

        def counted_pack_commands(connection, commands):  # a pipeline: one round trip
            commands = list(commands)
            wire._record([_name(command[0]) for command in commands if command])
            return pack_commands(connection, commands)

        self._patched = {"send_command": send_command, "pack_commands": pack_commands}
        AbstractConnection.send_command = counted_send_command  # type: ignore[method-assign]
        AbstractConnection.pack_commands = counted_pack_commands  # type: ignore[method-assign]
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(Pool, "checkout", self._checkout)
        for name, original in self._patched.items():
            setattr(AbstractConnection, name, original)
        for connection in self._traced:
            if hasattr(connection, "set_trace_callback"):
                connection.set_trace_callback(None)
            elif not connection.closed:
                connection.pgconn.untrace()
        self._traced.clear()


def _name(command: Any) -> str:
    return (command.decode() if isinstance(command, bytes) else str(command)).upper()


def summary(statements: list[str]) -> Counter[str]:
    """Statements by their first words (``INSERT INTO deliveries``, ``BEGIN``, ``SELECT 1``)."""
    return Counter(" ".join(s.split()[:3]) if s.startswith("INSERT") else s.split(" (")[0]
                   for s in statements)  # fmt: skip
