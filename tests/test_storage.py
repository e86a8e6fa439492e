"""Attachments in S3-compatible object storage (app/storage.py), against a real
``moto_server`` process: upload through the console route, download through the API route
byte for byte, the same access checks, and readable answers when the store fails."""

from __future__ import annotations

import os
import re
from io import BytesIO

import pytest

from app import create_app, storage
from app.branches.models import Attachment
from app.branches.service import ensure_root
from app.cases.models import Case
from app.extensions import db
from tests.procfile import free_port
from tests.s3_support import moto_server, s3_client, use_new_bucket

HX = {"HX-Request": "true"}
#: Every byte value, then noise: what a text round trip would mangle.
BLOB = bytes(range(256)) * 4 + os.urandom(300_000)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def s3_app(app, s3_server, monkeypatch) -> str:
    """The test app with its attachments in a new bucket; the bucket's name."""
    return use_new_bucket(app, s3_server, monkeypatch)


@pytest.fixture
def root(app) -> tuple[int, int]:
    """``(case id, root branch id)`` of an open case."""
    with app.app_context():
        case = Case(title="Uploads to the artefact store fail", provider="github")
        db.session.add(case)
        db.session.commit()
        branch, _ = ensure_root(case)
        db.session.commit()
        return case.id, branch.id


def note_with_file(client, root, data: bytes = BLOB, name: str = "core.dump"):
    case_id, branch_id = root
    return client.post(
        f"/cases/{case_id}/branches/{branch_id}/notes",
        data={"text": "the dump", "files": [(BytesIO(data), name)]},
        headers=HX,
        content_type="multipart/form-data",
    )


def attachment_ids(app) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(db.select(Attachment.id).order_by(Attachment.id)))


def bucket_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_a_file_goes_to_the_bucket_and_comes_back_byte_for_byte(
    app,
    s3_app,
    s3_server,
    engineer_client,
    viewer_client,
    anonymous_client,
    root,
    tmp_path,
):
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "not-used")
    answer = note_with_file(engineer_client, root)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert "core.dump" in answer.get_data(as_text=True)
    (attachment_id,) = attachment_ids(app)

    # In the bucket, under the prefix, keyed by case; nothing in the local folder.
    objects = bucket_objects(s3_server, s3_app)
    ((key, stored),) = objects.items()
    assert re.fullmatch(rf"attachments/{root[0]}/[0-9a-f]{{32}}", key)
    assert stored == BLOB
    assert not (tmp_path / "not-used").exists()

    # Streamed back through the route, with the download headers.
    download = viewer_client.get(f"/api/attachments/{attachment_id}")
    assert download.status_code == 200
    assert download.data == BLOB
    assert download.headers["Content-Length"] == str(len(BLOB))
    assert download.headers["Content-Disposition"] == "attachment; filename=core.dump"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Type"] == "application/octet-stream"

    # The same access checks: signed out, no bytes; a viewer may read but not attach.
    refused = anonymous_client.get(f"/api/attachments/{attachment_id}")
    assert refused.status_code == 401 and BLOB[:1024] not in refused.data
    assert note_with_file(viewer_client, root, b"nope", "x.txt").status_code == 403
    assert len(bucket_objects(s3_server, s3_app)) == 1


def test_a_missing_bucket_is_a_readable_refusal_not_a_500(
    app,
    s3_app,
    s3_server,
    engineer_client,
    client,
    root,
):
    assert note_with_file(engineer_client, root, b"first\n", "first.log").status_code == 200
    (kept,) = attachment_ids(app)
    app.config["ATTACHMENTS_URL"] = "s3://no-such-bucket-here/attachments"

    # The console shows the reason in the note form, keeps what was typed, saves nothing.
    answer = note_with_file(engineer_client, root, b"second\n", "second.log")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "could not be stored: the bucket &#39;no-such-bucket-here&#39; does not exist" in html
    assert "the dump" in html  # what was typed
    assert attachment_ids(app) == [kept]

    # The API answers 503 with the reason.
    case_id, branch_id = root
    answer = client.post(
        f"/api/cases/{case_id}/branches/{branch_id}/notes",
        data={"text": "x", "files": [(BytesIO(b"third"), "third.log")]},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "attachment_storage_unavailable"
    assert "does not exist" in answer.get_json()["detail"]

    # Reading a file kept there: 503 saying why; /readyz: degraded, still 200.
    answer = client.get(f"/api/attachments/{kept}")
    assert answer.status_code == 503
    assert "bucket 'no-such-bucket-here' does not exist" in answer.get_json()["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert "does not exist" in ready.get_json()["checks"]["attachments"]


def test_an_object_missing_from_the_bucket_is_404(app, s3_app, s3_server, client, root):
    assert note_with_file(client, root).status_code == 200
    (attachment_id,) = attachment_ids(app)
    with app.app_context():
        key = db.session.get(Attachment, attachment_id).storage_path
    s3_client(s3_server).delete_object(Bucket=s3_app, Key=f"attachments/{key}")
    answer = client.get(f"/api/attachments/{attachment_id}")
    assert answer.status_code == 404
    assert "missing from storage" in answer.get_json()["detail"]


def test_an_unreachable_store_is_reported_by_readyz(app, s3_app, client, monkeypatch):
    assert client.get("/readyz").get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "attachments": "ok"},
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    app.config["ATTACHMENTS_URL"] = "s3://elsewhere/attachments"  # a new client, new endpoint
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert "cannot reach the object store" in ready.get_json()["checks"]["attachments"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://bucket/x", "use s3://bucket/prefix"),
        ("s3:///prefix-only", "name the bucket"),
        ("file://relative/path", "file:///absolute/path"),
    ],
)
def test_a_malformed_store_url_stops_the_start(url, says, monkeypatch):
    monkeypatch.setenv("CASEHOOK_ATTACHMENTS_URL", url)
    with pytest.raises(storage.StorageConfigError, match=re.escape(says)):
        create_app({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_the_folder_store_is_the_default_and_keeps_keys_inside(app, tmp_path):
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "files")
    with app.app_context():
        store = storage.current()
        assert isinstance(store, storage.LocalStore)
        store.put("7/abc", b"bytes", "text/plain")
        opened = store.open("7/abc")
        assert (opened.body.read(), opened.size) == (b"bytes", 5)
        opened.body.close()
        with pytest.raises(storage.StoredFileMissing):
            store.open("../outside")
        with pytest.raises(storage.StoredFileMissing):
            store.open("7/nothing")
