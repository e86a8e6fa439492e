"""Provider registry: adding a provider means adding one module and one line here."""

from __future__ import annotations

from app.webhooks.providers.base import Provider
from app.webhooks.providers.github import GitHub

PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (GitHub(),)}


def get_provider(name: str) -> Provider | None:
    """The provider called ``name`` ("github", ...), or None when Casehook has no such module."""
    return PROVIDERS.get(name)
