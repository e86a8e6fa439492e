"""Endpoint secrets: stored Fernet-encrypted, or named by an environment variable."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from app.webhooks.models import Endpoint


class SecretUnavailable(Exception):
    """The endpoint's secret cannot be read (env var unset, or SECRET_KEY changed)."""


def _fernet() -> Fernet:
    # CASEHOOK_ENCRYPTION_KEY (a Fernet key) lets SECRET_KEY rotate without losing secrets.
    key = current_app.config.get("ENCRYPTION_KEY") or os.environ.get("CASEHOOK_ENCRYPTION_KEY")
    if not key:
        digest = hashlib.sha256(b"casehook-secrets:" + current_app.config["SECRET_KEY"].encode())
        key = base64.urlsafe_b64encode(digest.digest())
    return Fernet(key)


def encrypt(text: str) -> str:
    """``text`` Fernet-encrypted with the app's key, as endpoint secrets are kept (for other
    secrets: subscription secrets, reply tokens)."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The clear text of ``encrypt``'s output; ``InvalidToken`` if the key changed."""
    return _fernet().decrypt(token.encode()).decode()


def generate_secret(provider: str) -> str:
    """A fresh random endpoint secret in the form ``provider`` expects: ``whsec_`` + base64
    of 24 random bytes for Standard Webhooks (its senders decode it), 32 random bytes
    URL-safe for the others."""
    from app.webhooks.providers import get_provider

    module = get_provider(provider)
    return module.generate_secret() if module else secrets.token_urlsafe(32)


def store_secret(endpoint: Endpoint, secret: str) -> None:
    """Keep ``secret`` on ``endpoint``, encrypted."""
    endpoint.secret_encrypted = _fernet().encrypt(secret.encode()).decode()
    endpoint.secret_env = None


def endpoint_secret(endpoint: Endpoint) -> str:
    """The clear secret of ``endpoint``.

    Raises ``SecretUnavailable`` with a message an operator can act on.
    """
    if endpoint.secret_env:
        value = os.environ.get(endpoint.secret_env)
        if not value:
            raise SecretUnavailable(
                f"endpoint {endpoint.id} reads its secret from ${endpoint.secret_env}, "
                "which is not set in this process"
            )
        return value
    if not endpoint.secret_encrypted:
        raise SecretUnavailable(f"endpoint {endpoint.id} has no secret")
    try:
        return _fernet().decrypt(endpoint.secret_encrypted.encode()).decode()
    except InvalidToken:
        raise SecretUnavailable(
            f"endpoint {endpoint.id}'s secret cannot be decrypted: SECRET_KEY (or "
            "CASEHOOK_ENCRYPTION_KEY) changed since it was stored; rotate the secret"
        ) from None
