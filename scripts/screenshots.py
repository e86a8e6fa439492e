"""Regenerate the README's screenshots from a fresh demo instance (``scripts/screenshots``).

A throwaway SQLite database and embedded Redis in a temporary folder, ``flask db upgrade``,
``flask demo`` (its first admin signs in), the web server on a free port, then the system
Chromium through Playwright writes:

- ``docs/case-table.png``        the case table at 1280 px;
- ``docs/case-page.png``         the demo's worked case at 1280 px;
- ``docs/case-table-phone.png``  the case table at 390 px (the phone layout).

Nothing outside the temporary folder and ``docs/`` is touched; every process started here is
stopped. ``CHROMIUM`` names another browser binary; ``--out DIR`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        sys.exit("No system Chromium found (apt-get install chromium, or set CHROMIUM).")
    return path


def flask(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def wait_until(check, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"Timed out waiting for {what}.")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def shoot(base: str, email: str, password: str, case_id: int, out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(f"{base}/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/cases")
        page.locator("tr[data-case-id]").first.wait_for()
        page.screenshot(path=out / "case-table.png")
        page.set_viewport_size({"width": 1280, "height": 1100})
        page.goto(f"{base}/cases/{case_id}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=out / "case-page.png")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{base}/cases")
        page.locator("tr[data-case-id]").first.wait_for()
        page.screenshot(path=out / "case-table-phone.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="default: docs/")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="casehook-shots-") as folder:
        tmp = Path(folder)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CASEHOOK_", "FLASK_"))},
            "FLASK_APP": "app",
            "DATABASE_URL": f"sqlite:///{tmp / 'demo.sqlite3'}",
            "REDIS_URL": f"unix://{tmp / 'redis.sock'}",
            "CASEHOOK_PUBLIC_URL": f"http://localhost:{port}",
            "SECRET_KEY": "screenshots",
            "PORT": str(port),
        }
        try:
            redis = subprocess.Popen(
                [sys.executable, "-m", "app.embedded_redis", str(tmp)], cwd=ROOT, env=env
            )
            started.append(redis)
            wait_until((tmp / "redis.sock").exists, "the embedded Redis")
            flask(env, "db", "upgrade")
            demo = flask(env, "demo")
            password = re.search(r"Password: (\S+)", demo).group(1)
            email = re.search(r"Email: +(\S+)", demo).group(1)
            case_id = int(re.search(r"^Worked case #(\d+)", demo, re.M).group(1))
            web = subprocess.Popen(
                [sys.executable, "-m", "flask", "run", "--port", str(port)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            started.append(web)
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: answers(f"{base}/healthz"), "the web server")
            shoot(base, email, password, case_id, args.out)
        finally:
            for process in reversed(started):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    for name in ("case-table.png", "case-page.png", "case-table-phone.png"):
        print(f"Wrote {args.out / name}")


if __name__ == "__main__":
    main()
