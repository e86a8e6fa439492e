"""Fake agents for the agent tests: small Python scripts written into a test's directory and
run as real processes, and helpers to look at the processes they leave."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from app.extensions import db

ECHO = """
import os, sys
prompt = sys.stdin.read()
print("prompt:", prompt)
print("case:", os.environ.get("CASEHOOK_CASE_ID"), "task:", os.environ.get("CASEHOOK_TASK_ID"))
print("env:", sorted(k for k in os.environ if not k.startswith("CASEHOOK_")))
print("secret:", os.environ.get("API_KEY"))
print("cwd-empty:", os.listdir(".") == [])
print("to stderr", file=sys.stderr)
"""

# Starts a grandchild that ignores SIGTERM (so only SIGKILL of the group ends it), writes
# its pid to argv[1], then sleeps for argv[2] seconds.
SPAWNER = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
with open(sys.argv[1], "w") as f:
    f.write(str(child.pid))
print("started", child.pid, flush=True)
time.sleep(float(sys.argv[2]))
"""

LOUD = """
import sys
sys.stdout.write("x" * 1_000_000)
sys.stderr.write("e" * 300_000)
"""

# Fails (exit 3) until it has been run argv[2] times (counted in the file argv[1]).
FLAKY = """
import sys
from pathlib import Path
counter = Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
print("attempt", n)
sys.exit(0 if n >= int(sys.argv[2]) else 3)
"""

# Appends "start <t>" and "end <t>" lines to argv[1] around a sleep of argv[2] seconds.
RECORDER = """
import os, sys, time
def note(what):
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{what} {time.time():.4f} {os.getpid()}\\n".encode())
    os.close(fd)
note("start")
time.sleep(float(sys.argv[2]))
note("end")
"""


def write_agent(directory: Path, name: str, source: str) -> list[str]:
    """Write ``source`` as ``<name>.py`` in ``directory``; the argv that runs it."""
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return [sys.executable, str(path)]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def max_overlap(lines: list[str]) -> int:
    """The most runs at once, from RECORDER's start/end lines."""
    events = []
    for line in lines:
        what, at, _pid = line.split()
        events.append((float(at), 1 if what == "start" else -1))
    running = most = 0
    for _at, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


def run_state(run_id: str) -> dict:
    from app.agents.models import AgentRun

    db.session.expire_all()
    run = db.session.get(AgentRun, run_id)
    state = run.to_dict()
    db.session.rollback()
    return state


# First attempt: starts a grandchild that ignores SIGTERM (pid to argv[2]) and sleeps; any
# later attempt prints "attempt <n>" and exits 0. Attempts are counted in argv[1].
CRASHY = """
import subprocess, sys, time
from pathlib import Path
counter = Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
if n == 1:
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    Path(sys.argv[2]).write_text(str(child.pid))
    time.sleep(60)
print("attempt", n)
"""
