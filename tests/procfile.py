"""Run a line of the real ``Procfile`` as a test server: ``with procfile_web(env) as url``.

The command is taken from the Procfile as written and run with ``bash -c`` (as honcho or a
PaaS would), in its own process group so that stopping it also stops gunicorn's workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def procfile_command(kind: str) -> str:
    """The command of the Procfile line ``kind:`` (e.g. ``web``)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == kind:
            return command.strip()
    raise LookupError(f"no {kind}: line in the Procfile")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # the web line binds every interface
        return sock.getsockname()[1]


@contextlib.contextmanager
def procfile_web(env: dict[str, str], log_path: Path, timeout: float = 30) -> Iterator[str]:
    """Start the Procfile's ``web:`` line on a free port with ``env`` added to this
    process's environment; yield its base URL once ``/healthz`` answers; stop it (SIGTERM,
    then SIGKILL after 10 s) on the way out. Raises RuntimeError if it does not come up."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port)}
    full_env.pop("GUNICORN_CMD_ARGS", None)
    base_url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", procfile_command("web")],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"web exited ({proc.returncode}):\n{log_path.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"web did not come up:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base_url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
