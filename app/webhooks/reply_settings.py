"""An endpoint's reply settings: ``settings["reply"]``, checked on the way in, never shown
back with the token.

Stored shape: ``{"api_url"?: str, "token_encrypted"?: str, "token_env"?: str, <option>: str}``
where the options are the provider's ``reply_options`` (PagerDuty's ``from``, Jira's
``api_version`` and ``user``, GitHub's ``reaction``). Given shape (API, console, YAML):
``{"api_url"?, "token"? | "token_env"?, <option>?}``; a given ``token`` is encrypted like
endpoint secrets, ``token: null`` forgets the stored one, and leaving both out keeps it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import InvalidToken

from app.webhooks.providers import get_provider
from app.webhooks.providers.base import Provider, ReplySettings
from app.webhooks.secrets import decrypt, encrypt

KEY = "reply"
#: Keys only the stored form has (the token kept encrypted): never taken from a request.
STORED_ONLY = ("token_encrypted",)
#: What the API shows instead of the token: ``token_stored`` says where it is kept.
SHOWN_ONLY = ("token_stored",)
MAX_URL = 500
MAX_TOKEN = 4000
MAX_OPTION = 200
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,199}$")


class ReplySettingsError(ValueError):
    """Reply settings that cannot be used; the message says which key and why."""


class ReplyUnavailable(Exception):
    """An endpoint cannot reply now (no token, env var unset, key changed); says why."""


def clean(
    provider: str,
    given: Any,
    existing: Mapping[str, Any] | None = None,
    *,
    allow_token: bool = True,
) -> dict:
    """The reply settings to store for ``given`` (see the module docstring), keeping the
    token of ``existing`` (the stored ones) when ``given`` names none. ``allow_token`` False
    (config files) refuses a clear ``token``. ``ReplySettingsError`` otherwise."""
    module = get_provider(provider)
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ReplySettingsError('reply must be an object like {"api_url": …, "token": …}')
    options = module.reply_options if module else {}
    known = {"api_url", "token", "token_env", *SHOWN_ONLY, *options}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ReplySettingsError(
            f"reply: unknown key {unknown[0]!r}; use api_url, token or token_env"
            + (f", {', '.join(options)}" if options else "")
        )
    cleaned: dict[str, Any] = {}
    api_url = given.get("api_url")
    if api_url not in (None, ""):
        if not isinstance(api_url, str) or not re.match(r"^https?://[^\s/]+", api_url.strip()):
            raise ReplySettingsError("reply.api_url must be an http(s) URL, e.g. "
                                     "https://github.example.com/api/v3")  # fmt: skip
        if len(api_url) > MAX_URL:
            raise ReplySettingsError(f"reply.api_url is longer than {MAX_URL} characters")
        cleaned["api_url"] = api_url.strip().rstrip("/")
    token, token_env = given.get("token"), given.get("token_env")
    if token not in (None, "") and token_env not in (None, ""):
        raise ReplySettingsError("reply: give token or token_env, not both")
    if token not in (None, ""):
        if not allow_token:
            raise ReplySettingsError(
                "reply.token: tokens are never written in config files; name an environment "
                "variable with token_env"
            )
        if (
            not isinstance(token, str)
            or len(token) > MAX_TOKEN
            or not token.strip()
            or any(ord(c) < 32 for c in token.strip())
        ):
            raise ReplySettingsError(f"reply.token must be one line of at most {MAX_TOKEN} "
                                     "characters")  # fmt: skip
        cleaned["token_encrypted"] = encrypt(token.strip())
    elif token_env not in (None, ""):
        if not isinstance(token_env, str) or not _ENV_NAME.match(token_env.strip()):
            raise ReplySettingsError(
                "reply.token_env must name an environment variable, e.g. GITHUB_REPLY_TOKEN"
            )
        cleaned["token_env"] = token_env.strip()
    elif "token" not in given or given.get("token") == "":
        # Neither given: keep what is stored (the token is never shown, so a form or a
        # PATCH that sends the other settings back must not erase it). ``null`` forgets.
        for key in ("token_encrypted", "token_env"):
            if existing and existing.get(key):
                cleaned[key] = existing[key]
    for name in options:
        value = given.get(name)
        if value in (None, ""):
            continue
        value = str(value).strip() if isinstance(value, str | int) else value
        if not isinstance(value, str) or len(value) > MAX_OPTION:
            raise ReplySettingsError(f"reply.{name} must be text of at most {MAX_OPTION} "
                                     "characters")  # fmt: skip
        choices = module.reply_option_choices.get(name) if module else None
        if choices and value not in choices:
            raise ReplySettingsError(f"reply.{name} must be one of {', '.join(choices)}")
        cleaned[name] = value
    return cleaned


def public(settings: Mapping[str, Any] | None) -> dict:
    """Endpoint settings as the console and the API show them: the reply token replaced by
    where it is kept (``token_stored``: ``encrypted``, ``env`` or ``none``)."""
    settings = dict(settings or {})
    reply = settings.get(KEY)
    if isinstance(reply, Mapping):
        shown = {k: v for k, v in reply.items() if k not in STORED_ONLY}
        shown["token_stored"] = (
            "env" if reply.get("token_env") else "encrypted" if reply.get("token_encrypted")
            else "none"
        )  # fmt: skip
        settings[KEY] = shown
    return settings


def stored(settings: Mapping[str, Any] | None) -> dict:
    """The stored reply settings of an endpoint (``{}`` when none)."""
    reply = (settings or {}).get(KEY)
    return dict(reply) if isinstance(reply, Mapping) else {}


def token_state(settings: Mapping[str, Any] | None) -> str:
    """``encrypted``, ``env`` or ``none``: where the endpoint's reply token is."""
    return public(settings).get(KEY, {}).get("token_stored", "none")


def resolve(endpoint: Any, provider: Provider, target: Mapping[str, Any]) -> ReplySettings:
    """The ``ReplySettings`` to reply through ``endpoint`` with (the clear token): the API
    URL is the endpoint's, else the provider's public API (Jira: the site named by the
    target). ``ReplyUnavailable`` saying what to set up when it cannot reply."""
    reply = stored(endpoint.settings)
    where = f"endpoint {endpoint.name!r}"
    if reply.get("token_env"):
        token = os.environ.get(reply["token_env"], "")
        if not token:
            raise ReplyUnavailable(
                f"{where} reads its reply token from ${reply['token_env']}, which is not set "
                "in the worker"
            )
    elif reply.get("token_encrypted"):
        try:
            token = decrypt(reply["token_encrypted"])
        except InvalidToken:
            raise ReplyUnavailable(
                f"{where}'s reply token cannot be decrypted: SECRET_KEY (or "
                "CASEHOOK_ENCRYPTION_KEY) changed since it was stored; set it again"
            ) from None
    else:
        raise ReplyUnavailable(
            f"{where} has no reply token: set one on the endpoint (settings.reply.token or "
            "token_env)"
        )
    api_url = reply.get("api_url") or provider.default_api_url or ""
    options = {k: v for k, v in reply.items() if k in provider.reply_options}
    return ReplySettings(api_url=api_url.rstrip("/"), token=token, options=options)
