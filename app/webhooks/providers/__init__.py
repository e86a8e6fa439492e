"""Provider registry: adding a provider means adding one module, one line here, and its sample
requests in ``samples/<name>/`` (a body and the headers it sends, per sample)."""

from __future__ import annotations

from app.webhooks.providers.alertmanager import Alertmanager
from app.webhooks.providers.base import Provider
from app.webhooks.providers.github import GitHub
from app.webhooks.providers.gitlab import GitLab
from app.webhooks.providers.jira import Jira
from app.webhooks.providers.pagerduty import PagerDuty
from app.webhooks.providers.sentry import Sentry
from app.webhooks.providers.slack import Slack
from app.webhooks.providers.standard import Standard

PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        GitHub(),
        Slack(),
        Standard(),
        Alertmanager(),
        GitLab(),
        Jira(),
        Sentry(),
        PagerDuty(),
    )
}


def get_provider(name: str) -> Provider | None:
    """The provider called ``name`` ("github", ...), or None when Casehook has no such module."""
    return PROVIDERS.get(name)
