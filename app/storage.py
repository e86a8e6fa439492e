"""Where uploaded files live: a folder of this machine (the default) or S3-compatible object
storage, so that several web boxes behind a load balancer serve the same files.

``current()`` is the store the app's configuration names (``ATTACHMENTS_URL``, else the
folder ``ATTACHMENTS_DIR``; see app/config.py). A store keeps bytes under keys such as
``<case id>/<random>`` and answers in ``StorageError``s whose message says what to check:
``StorageUnavailable`` when the store cannot be used at all (the bucket is missing, the
credentials are refused, the endpoint does not answer), ``StoredFileMissing`` when one
key has nothing under it.

For S3, boto3 reads the usual AWS variables itself (credentials, region,
``AWS_ENDPOINT_URL`` for MinIO, Ceph, R2, ...), so its whole credential chain works.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from flask import current_app


class StorageError(Exception):
    """The store could not do what was asked; the message says what to check."""


class StorageUnavailable(StorageError):
    """The store cannot be used: missing, unreachable, or refusing our credentials."""


class StoredFileMissing(StorageError):
    """Nothing is stored under the key."""


class StorageConfigError(ValueError):
    """``CASEHOOK_ATTACHMENTS_URL`` cannot be used as written (raised at start-up)."""


@dataclass
class StoredFile:
    """An open stored file: read ``body`` (then close it); ``size`` in bytes."""

    body: IO[bytes]
    size: int


class Store(Protocol):
    #: Where the files are, for messages (``the folder /srv/x``, ``s3://bucket/prefix``).
    description: str

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def open(self, key: str) -> StoredFile: ...

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless files can be stored (a probe)."""


class LocalStore:
    """Files under one folder of this machine; a key never leads outside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = f"the folder {self.root}"

    def _path(self, key: str) -> Path:
        root = self.root.resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise StoredFileMissing(f"{key!r} is not a key of {self.description}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot write to {self.description} ({exc.strerror or exc}); "
                "check CASEHOOK_ATTACHMENTS_DIR"
            ) from exc

    def open(self, key: str) -> StoredFile:
        path = self._path(key)
        try:
            body = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StoredFileMissing(f"{key!r} is missing from {self.description}") from exc
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot read {self.description} ({exc.strerror or exc})"
            ) from exc
        return StoredFile(body, os.fstat(body.fileno()).st_size)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # A name of its own: several processes probe the same folder at once.
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot write to {self.description} ({exc.strerror or exc})"
            ) from exc


#: Error codes of S3 (and of HEAD answers, which have no body) that mean our credentials
#: or permissions are refused.
_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
            "InvalidToken", "ExpiredToken", "AllAccessDisabled"}  # fmt: skip
_NO_BUCKET = {"NoSuchBucket"}
_NO_KEY = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    """Objects ``<prefix>/<key>`` in one bucket of S3 or an S3-compatible server."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.description = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client: Any = None
        self._lock = threading.Lock()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def client(self) -> Any:
        """One boto3 client per store (clients are thread-safe; creating one is not)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                # Short timeouts and few retries: a person waits on every call, and the
                # probe (/readyz) must answer while the store is down.
                config = Config(
                    connect_timeout=3,
                    read_timeout=20,
                    retries={"max_attempts": 2, "mode": "standard"},
                )
                try:
                    self._client = boto3.session.Session().client("s3", config=config)
                except Exception as exc:  # botocore's configuration errors have no common base
                    raise StorageUnavailable(
                        f"cannot set up the S3 client for {self.description}: {exc}"
                    ) from exc
            return self._client

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._errors(key):
            self.client().put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ContentType=content_type or "application/octet-stream",
            )

    def open(self, key: str) -> StoredFile:
        with self._errors(key):
            answer = self.client().get_object(Bucket=self.bucket, Key=self._key(key))
        return StoredFile(answer["Body"], int(answer["ContentLength"]))

    def check(self) -> None:
        with self._errors(None):
            self.client().head_bucket(Bucket=self.bucket)

    @contextlib.contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """Turn botocore's exceptions into ``StorageError``s that say what to check;
        ``key`` None: the call was about the bucket itself."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _NO_BUCKET or (key is None and code in _NO_KEY):
                raise StorageUnavailable(
                    f"the bucket {self.bucket!r} does not exist at the object store "
                    "(CASEHOOK_ATTACHMENTS_URL, AWS_ENDPOINT_URL)"
                ) from exc
            if code in _NO_KEY:
                raise StoredFileMissing(f"{key!r} is missing from {self.description}") from exc
            if code in _REFUSED:
                raise StorageUnavailable(
                    f"the object store refused access to {self.description} ({code}): check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"
                ) from exc
            raise StorageUnavailable(
                f"the object store failed on {self.description}: {code} "
                f"{error.get('Message') or ''}".rstrip()
            ) from exc
        except NoCredentialsError as exc:
            raise StorageUnavailable(
                f"no AWS credentials for {self.description}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or another source boto3 reads)"
            ) from exc
        except EndpointConnectionError as exc:
            raise StorageUnavailable(
                f"cannot reach the object store for {self.description} ({exc}); "
                "check AWS_ENDPOINT_URL"
            ) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(
                f"the object store failed on {self.description}: {exc}"
            ) from exc


def from_config(config: Mapping[str, Any]) -> Store:
    """The store ``config`` names; ``StorageConfigError`` when ``ATTACHMENTS_URL`` is not
    ``s3://bucket[/prefix]`` or ``file:///folder``, or boto3 is missing for s3."""
    url = config.get("ATTACHMENTS_URL")
    if not url:
        return LocalStore(Path(config["ATTACHMENTS_DIR"]))
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path.startswith("/") or parts.netloc:
            raise StorageConfigError(
                f"CASEHOOK_ATTACHMENTS_URL={url!r}: write a folder as file:///absolute/path"
            )
        return LocalStore(Path(parts.path))
    if parts.scheme != "s3":
        raise StorageConfigError(
            f"CASEHOOK_ATTACHMENTS_URL={url!r}: use s3://bucket/prefix (object storage) or "
            "file:///folder; unset, attachments go to CASEHOOK_ATTACHMENTS_DIR"
        )
    if not parts.netloc or parts.query or parts.fragment:
        raise StorageConfigError(
            f"CASEHOOK_ATTACHMENTS_URL={url!r}: name the bucket, as s3://bucket/prefix"
        )
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        raise StorageConfigError(
            f"CASEHOOK_ATTACHMENTS_URL={url!r} needs boto3: pip install 'casehook[s3]'"
        ) from exc
    return S3Store(parts.netloc, parts.path)


def init_app(app: Any) -> None:
    """Check at start-up that the configured store can be built (no network call)."""
    from_config(app.config)


def current() -> Store:
    """The store of the current app's configuration (one per setting, kept on the app)."""
    config = current_app.config
    setting = (config.get("ATTACHMENTS_URL"), config.get("ATTACHMENTS_DIR"))
    stores = current_app.extensions.setdefault("casehook_storage", {})
    if setting not in stores:
        stores[setting] = from_config(config)
    return stores[setting]
