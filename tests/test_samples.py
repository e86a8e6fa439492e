"""A bare clone runs: the sample requests ship in the package, ``flask demo`` and "Send a test
delivery" use them, and nothing in the product reads ``../shared`` (a test resource only).

"Unreachable" is real here: while ``shared_unreachable`` is on, an audit hook refuses every
open and directory listing under the shared folder (``PermissionError``) and records it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from app import demo
from app.cases.models import Case
from app.extensions import db
from app.webhooks.models import Delivery, Endpoint
from app.webhooks.providers import PROVIDERS
from app.webhooks.providers.base import header_lines
from app.webhooks.secrets import generate_secret
from tests.conftest import FIXTURES
from tests.procfile import free_port
from tests.test_endpoints_console import HX, new_endpoint, text

ROOT = Path(__file__).resolve().parents[1]
SHARED = FIXTURES.parent
SAMPLES = ROOT / "app" / "webhooks" / "providers" / "samples"

# --- the shared folder made unreachable -------------------------------------------------------

_blocked: list[str] = []
_attempts: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if not _blocked or event not in ("open", "os.listdir", "os.scandir"):
        return
    target = args[0] if args else None
    if isinstance(target, int) or target is None:
        return  # an already open file descriptor
    path = os.path.abspath(os.fsdecode(target))
    if any(path == root or path.startswith(root + os.sep) for root in _blocked):
        _attempts.append(path)
        raise PermissionError(f"{path}: ../shared is a test resource, not the product's")


sys.addaudithook(_audit)


@pytest.fixture
def shared_unreachable():
    """While the test runs, nothing may open or list the shared folder; yields the list of
    refused attempts (the test asserts it stays empty)."""
    _attempts.clear()
    _blocked.append(os.path.abspath(SHARED))
    try:
        yield _attempts
    finally:
        _blocked.clear()


def test_the_guard_refuses_the_shared_folder(shared_unreachable):
    with pytest.raises(PermissionError):
        (FIXTURES / "github" / "issues.opened.json").read_bytes()
    assert shared_unreachable == [str(FIXTURES / "github" / "issues.opened.json")]
    shared_unreachable.clear()


# --- what ships -------------------------------------------------------------------------------

SHIPPED = [(name, sample.name) for name, p in PROVIDERS.items() for sample in p.samples()]


def test_every_provider_ships_samples_that_its_own_checks_accept():
    for name, provider in PROVIDERS.items():
        samples = provider.samples()
        assert samples, f"{name} ships no samples"
        secret = generate_secret(name)
        for sample in samples:
            headers = provider.sample_request(secret, sample)
            provider.verify(secret, headers, sample.body)  # raises when signed wrong
            payload = json.loads(sample.body)
            assert provider.delivery_id(headers, payload)
            assert provider.event_type(headers, payload) != "unknown", (name, sample.name)
        assert provider.sample("../../README") is None
        assert provider.sample("no.such.sample") is None


def test_package_data_covers_every_sample_file():
    """A wheel (not only a checkout) must carry the samples: every file the loader reads is
    matched by ``[tool.setuptools.package-data]``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app.webhooks.providers"]
    package = SAMPLES.parent
    files = [p for p in SAMPLES.rglob("*") if p.is_file() and p.suffix in (".json", ".headers")]
    assert len(files) >= 2 * len(PROVIDERS)
    for path in files:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_every_sample_body_has_its_headers_file():
    for body in SAMPLES.glob("*/*.json"):
        headers = header_lines(body.with_suffix(".headers").read_text())
        assert headers.get("Content-Type", "").startswith("application/json"), body


def test_the_product_never_names_the_shared_folder():
    pattern = re.compile(r"""shared["'/ ,)]+["']?fixtures|\.\./shared""")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("app", "scripts", "templates")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix not in (".pyc",)
        and pattern.search(path.read_text(errors="ignore"))
    ]
    assert offenders == []


# --- flask demo -------------------------------------------------------------------------------


#: What ``flask demo`` sends: every shipped sample and the demo's own incidents.
SENT = len(SHIPPED) + len(demo.INCIDENTS)


def test_demo_sends_every_providers_samples_with_shared_unreachable(
    app, runner, drain, shared_unreachable
):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert f"Sent {SENT} deliveries" in result.output
    assert "cases: http://casehook.test/cases" in result.output
    assert drain() == 0
    with app.app_context():
        endpoints = db.session.scalars(db.select(Endpoint)).all()
        assert {e.provider for e in endpoints} == set(PROVIDERS)
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == SENT
        failed = db.session.scalars(db.select(Delivery).where(Delivery.status != "processed"))
        assert [d.event_type for d in failed] == []
        cases = db.session.scalars(db.select(Case)).all()
        assert len(cases) >= 12
        assert {c.severity for c in cases} == {"critical", "error", "warning", "info"}
        assert {c.status for c in cases} >= {"open", "closed", "resolved", "parked", "escalated"}
        assert len({c.provider for c in cases}) >= 7
        assert sum(c.acknowledged_at is not None for c in cases) >= 2
    assert shared_unreachable == []


def test_demo_works_one_case_through_the_domain(app, runner, drain):
    """One worked case: a dead end and a solved branch, an escalation claimed by someone
    else, resolved, its three outputs written and approved; one case escalated and waiting
    in the claim queue, one parked with what it waits on and when to resume. Sentences
    only, no JSON log lines."""
    from app.branches.models import Branch
    from app.handoffs.models import Handoff
    from app.outputs.models import ResolutionOutput

    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert not re.search(r"^\s*\{", result.output, re.M), result.output
    worked_line = re.search(r"^Worked case #(\d+) \((.+?)\): .*resolved, outputs approved: "
                            r"http://casehook.test/cases/(\d+)$", result.output, re.M)  # fmt: skip
    assert worked_line, result.output
    case_id = int(worked_line.group(1))
    assert int(worked_line.group(3)) == case_id
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.title == worked_line.group(2) and case.severity == "critical"
        assert case.status == "resolved" and case.resolution_summary
        assert case.assignee.email == demo.BEN and case.acknowledged_by == demo.ANA
        branches = {b.label: b for b in db.session.scalars(
            db.select(Branch).where(Branch.case_id == case_id))}  # fmt: skip
        assert branches["Bad deploy"].status == "dead_end"
        assert "did not change the 502 rate" in branches["Bad deploy"].reason
        assert branches["Connection pool exhausted"].status == "solved"
        assert branches["Load balancer health checks"].status == "untried"
        [handoff] = db.session.scalars(db.select(Handoff).where(Handoff.case_id == case_id))
        assert handoff.intent == "escalate" and handoff.claimed_by.email == demo.BEN
        assert handoff.created_by.email == demo.ANA
        assert handoff.briefing and handoff.assessment  # written here, not left for a worker
        written = db.session.scalars(
            db.select(ResolutionOutput).where(ResolutionOutput.case_id == case_id)
        ).all()
        assert sorted(o.kind for o in written) == ["client_summary", "kb_article", "ticket_notes"]
        assert {o.status for o in written} == {"approved"}
        types = [e.type for e in case.events]
        for expected in (
            "case.acknowledged",
            "branch.forked",
            "branch.status_changed",
            "case.escalated",
            "case.claimed",
            "case.resolved",
            "output.approved",
        ):
            assert expected in types, expected  # fmt: skip

        waiting = db.session.scalars(
            db.select(Handoff).where(Handoff.case_id != case_id, Handoff.claimed_at.is_(None))
        ).all()
        assert sorted(h.intent for h in waiting) == ["escalate", "park"]
        parked = next(h for h in waiting if h.intent == "park")
        assert parked.waiting_on and parked.resume_at is not None
        assert parked.case.status == "parked"
    # The worker finds nothing left to do that would undo the demo (no output rewritten).
    assert drain() == 0
    with app.app_context():
        assert {o.status for o in db.session.scalars(
            db.select(ResolutionOutput).where(ResolutionOutput.case_id == case_id))} == {
            "approved"}  # fmt: skip

    # Run again: nothing is worked twice.
    again = runner.invoke(args=["demo"])
    assert again.exit_code == 0, again.output
    assert "outputs approved (already)" in again.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Handoff.id))) == 3
        assert db.session.scalar(db.select(db.func.count(Case.id))) == len(
            db.session.scalars(db.select(Case)).all()
        )


def test_demo_twice_says_so_and_sends_nothing_again(app, runner, drain):
    assert runner.invoke(args=["demo"]).exit_code == 0
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert "Demo already loaded for github, " in second.output
    assert "nothing sent again (flask demo --again resends)" in second.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Delivery.id))) == SENT
        assert db.session.scalar(db.select(db.func.count(Endpoint.id))) == len(PROVIDERS)
        cases = db.session.scalar(db.select(db.func.count(Case.id)))
    again = runner.invoke(args=["demo", "--again"])
    assert again.exit_code == 0 and f"Sent {SENT} deliveries" in again.output
    assert "(already sent)" in again.output  # ids taken from the body: duplicates, not errors
    assert drain() == 0
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Endpoint.id))) == len(PROVIDERS)
        assert db.session.scalar(db.select(db.func.count(Case.id))) == cases


# --- Send a test delivery ----------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "sample"), SHIPPED)
def test_test_delivery_sends_each_shipped_sample_with_shared_unreachable(
    app, client, drain, shared_unreachable, provider, sample
):
    endpoint_id, _, _ = new_endpoint(client, provider=provider, name=f"{provider} test")
    page = text(client.get(f"/endpoints/{endpoint_id}"))
    assert f'<option value="{sample}">' in page
    response = client.post(
        f"/endpoints/{endpoint_id}/test-delivery", data={"fixture": sample}, headers=HX
    )
    assert response.status_code == 200
    answer = text(response)
    status = int(re.search(r"the route answered (\d+)", answer).group(1))
    assert status in (200, 202), answer
    assert drain() == 0
    with app.app_context():
        delivery = db.session.scalars(db.select(Delivery)).one()
        assert delivery.verdict == "accepted" and delivery.status == "processed"
        # The headers the provider sends came along (not only a signature).
        stored = {k.lower(): v for k, v in (delivery.headers or {}).items()}
        assert stored["content-type"].startswith("application/json")
    assert shared_unreachable == []


def test_dry_run_on_a_sample_with_shared_unreachable(app, client, shared_unreachable):
    endpoint_id, _, _ = new_endpoint(client, provider="gitlab", name="gl")
    response = client.post(
        f"/endpoints/{endpoint_id}/dry-run", data={"subject": "fixture:pipeline.failed"}, headers=HX
    )
    assert response.status_code == 200
    assert "event type <code>pipeline.failed</code>" in text(response)
    assert shared_unreachable == []


# --- scripts/run --demo from a bare copy of the tree ----------------------------------------


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that mention ``folder`` (ours or our children's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if str(folder) in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def _tracked_files() -> list[str]:
    """The files a clone of this repository holds: what git tracks (``.gitignore``d and
    never added files are not in a user's clone, so they must not be needed)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def _bare_copy(tmp_path: Path) -> Path:
    """A clone of the repository in ``tmp_path/casehook`` with nothing beside it: git's
    tracked files, as they are in this working tree (so uncommitted edits are tried too),
    and a ``.venv`` that borrows this checkout's installed packages (so no install runs)."""
    clone = tmp_path / "casehook"
    clone.mkdir()
    for name in _tracked_files():
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree, not yet in git
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    assert not (clone / "instance").exists() and (clone / "scripts" / "run").exists()
    venv = Path(sys.prefix)
    (clone / ".venv").mkdir()
    for part in ("bin", "lib", "pyvenv.cfg"):
        (clone / ".venv" / part).symlink_to(venv / part)
    (clone / ".venv" / ".installed").touch()
    os.utime(clone / "pyproject.toml", (0, 0))  # older than .installed: no pip install
    return clone


def _env(**extra: str) -> dict[str, str]:
    """This environment without Casehook's settings (a new user's shell), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CASEHOOK_", "TEST_", "DATABASE_", "REDIS_", "FLASK_", "VIRTUAL"))
        and k not in ("SECRET_KEY", "PORT")
    }
    return {**env, **extra}


def test_flask_demo_in_a_bare_copy_prints_sentences_only(app, tmp_path):
    """The real ``flask`` command, in a copy of the tree with no ``../shared``: every
    provider's samples go out, and stdout + stderr hold sentences, not JSON log lines."""
    clone = _bare_copy(tmp_path)
    env = _env(
        FLASK_APP="app",
        DATABASE_URL=f"sqlite:///{clone / 'instance' / 'demo.sqlite3'}",
        # The test app's Redis queue, which its teardown empties.
        REDIS_URL=app.config["REDIS_URL"],
        CASEHOOK_QUEUE=app.config["RQ_QUEUE"],
        CASEHOOK_PUBLIC_URL="http://demo.example:8123",
        SECRET_KEY="test",
    )

    def flask(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "flask", *args]
        return subprocess.run(
            command, cwd=clone, env=env, capture_output=True, text=True, timeout=120
        )

    located = subprocess.run(
        [sys.executable, "-c", "import app; print(app.__file__)"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.startswith(str(clone))  # the copy runs, not this checkout
    (clone / "instance").mkdir()
    assert flask("db", "upgrade").returncode == 0
    first = flask("demo")
    assert first.returncode == 0, first.stderr
    printed = first.stdout + first.stderr
    assert f"Sent {SENT} deliveries" in first.stdout
    assert "http://demo.example:8123/cases" in first.stdout
    assert "Worked case #" in first.stdout
    assert not re.search(r"^\s*\{", printed, re.M), printed  # no JSON log line
    assert "Traceback" not in printed
    for name in PROVIDERS:
        assert re.search(rf"^  {name} +\d+ sent: ", first.stdout, re.M), first.stdout
    again = flask("demo")
    assert again.returncode == 0 and "Demo already loaded for github" in again.stdout


@pytest.mark.slow
@pytest.mark.skipif(not Path(sys.prefix, "bin", "activate").exists(), reason="needs a venv")
@pytest.mark.parametrize("ctrl_c", ["script", "terminal"])
def test_scripts_run_demo_in_a_bare_copy_then_ctrl_c(tmp_path, ctrl_c):
    """``scripts/run --demo`` in a clone with nothing beside it: it starts, the admin can sign
    in, /cases lists demo cases (the samples' and the worked case, resolved); Ctrl-C (SIGINT
    to the script alone, or to its whole process
    group as a terminal sends it) stops the web and worker, then Redis, with no traceback."""
    clone = _bare_copy(tmp_path)
    assert not (tmp_path / "shared").exists()
    port = free_port()
    env = _env(PORT=str(port))
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["scripts/run", "--demo"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As in a terminal: SIGINT is not ignored (a background shell would ignore it).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while "Casehook is running at" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        output = log.read_text(errors="replace")
        assert f"Casehook is running at http://localhost:{port}/cases" in output
        assert "Sent " in output and " deliveries" in output
        assert "alembic" not in output.lower() and "Redis is starting" not in output
        password = re.search(r"Password: (\S+)", output).group(1)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            login = http.get("/login").text
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
            signed_in = http.post(
                "/login",
                data={"csrf_token": token, "email": "admin@localhost", "password": password},
            )
            assert signed_in.status_code == 302, signed_in.text[:500]
            deadline = time.monotonic() + 60
            while True:
                cases = http.get("/cases").text
                if "InstanceDown" in cases and "blooopy" in cases:
                    break
                assert time.monotonic() < deadline, cases[-2000:]
                time.sleep(0.5)
            resolved = http.get("/cases?status=resolved").text
            assert "Checkout API answers 502" in resolved, resolved[-2000:]
            assert "Disk 91% full on db-replica-2" in http.get("/queue").text
    finally:
        if ctrl_c == "script":
            process.send_signal(signal.SIGINT)
        else:
            os.killpg(process.pid, signal.SIGINT)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    output = log.read_text(errors="replace")
    assert returncode == 130, output[-3000:]
    assert "Traceback" not in output, output
    assert "Casehook stopped." in output
    # The worker stopped, then Redis was told to stop (SIGTERM from the script): a terminal's
    # SIGINT never reached it.
    assert output.index("worker.1 stopped") < output.index("Stopping the embedded Redis")
    redis_log = (clone / "instance" / "redis.log").read_text()
    assert "Received SIGTERM" in redis_log and "SIGINT" not in redis_log, redis_log
    assert "ready to exit" in redis_log
    time.sleep(0.5)
    assert _processes_under(clone) == []
