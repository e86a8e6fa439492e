"""A local S3-compatible server for the attachment tests: moto's server mode, run as a
real process (``moto_server``), reached over HTTP by boto3 exactly as a real store would be.

``moto_server(log_path)`` runs one and yields its endpoint URL; ``s3_env(endpoint)`` is the
environment that points boto3 at it; ``make_bucket`` creates a bucket there, and
``use_new_bucket`` points a test app's attachments at a new one.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from flask import Flask

from tests.faults_support import wait_until
from tests.procfile import free_port

VENV_BIN = Path(sys.executable).parent


def s3_env(endpoint: str) -> dict[str, str]:
    """The AWS variables a box needs to use the test server (moto accepts any keys)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "casehook-test",
        "AWS_SECRET_ACCESS_KEY": "casehook-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def s3_client(endpoint: str):
    """A boto3 S3 client of the test server, for looking behind the app's back."""
    env = s3_env(endpoint)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def make_bucket(endpoint: str, name: str | None = None) -> str:
    """Create a bucket with a fresh name (or ``name``) at ``endpoint``; returns its name."""
    name = name or f"casehook-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@contextlib.contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """``moto_server`` on a free port of 127.0.0.1 until the block ends; yields its URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until(lambda: httpx.get(endpoint, timeout=1).status_code < 500, 60, "moto_server")
        yield endpoint
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def use_new_bucket(app: Flask, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point ``app``'s attachments at a new bucket of the server at ``endpoint`` (objects
    under the prefix ``attachments``); returns the bucket's name."""
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = make_bucket(endpoint)
    app.config["ATTACHMENTS_URL"] = f"s3://{bucket}/attachments"
    return bucket
