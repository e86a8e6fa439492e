"""Outbound webhook subscriptions as the API shows and changes them (``/api/subscriptions``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, StrictBool

from app.api.schemas import Body, Out, Query, Timestamp, whole
from app.cases.models import _iso


class SubscriptionSecret(Out):
    env: str | None = Field(description="The environment variable holding it (config)")
    rotating_until: Timestamp | None = Field(description="The previous secret signs until")


class Health(Out):
    """Over the last 100 attempts."""

    state: Literal["healthy", "failing", "disabled"]
    last_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    success_rate: float | None
    attempts: int


class SubscriptionBase(Out):
    id: str
    url: str
    event_types: list[str]
    endpoint_id: str | None
    provider: str | None
    description: str | None
    headers: dict[str, str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: Timestamp | None
    source: str | None
    health: Health
    consecutive_failures: int | None
    failing_since: Timestamp | None
    created_at: Timestamp | None
    updated_at: Timestamp | None


class Subscription(SubscriptionBase):
    secret: SubscriptionSecret

    @classmethod
    def of(cls, subscription: Any) -> Subscription:
        from app.outbound.service import subscription_dict

        return cls.model_validate(subscription_dict(subscription))


class SubscriptionWithSecret(SubscriptionBase):
    """The subscription and its clear secret, shown only in this answer."""

    secret: str

    @classmethod
    def of(cls, subscription: Any, secret: str) -> SubscriptionWithSecret:
        from app.outbound.service import subscription_dict

        return cls.model_validate({**subscription_dict(subscription), "secret": secret})


class SubscriptionList(Out):
    subscriptions: list[Subscription] = Field(description="Newest first")


class SubscriptionFields(Body):
    """The editable fields; values are checked by the subscription rules (422 with an
    ``invalid_<field>`` slug; an unsafe URL is 422 ``unsafe_url`` naming the address class)."""

    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, description="Patterns, e.g. case.*")
    description: str | None = None
    endpoint_id: str | None = Field(None, description="Only events of this endpoint's cases")
    provider: str | None = Field(None, description="Only events of this provider's cases")
    headers: dict[str, str] | None = Field(None, description="Sent with every message")

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class SubscriptionCreate(SubscriptionFields):
    url: str = Field(max_length=2000)
    event_types: list[str] = Field(description="Patterns, e.g. case.*")
    secret: str | None = Field(None, description="A Standard Webhooks secret (whsec_...)")


class SubscriptionPatch(SubscriptionFields):
    hints: ClassVar[dict[str, str]] = {
        "secret": "change the secret with POST /api/subscriptions/<id>/rotate-secret"
    }

    enabled: StrictBool | None = None


class SubscriptionSecretBody(Body):
    secret: str | None = Field(None, description="Choose it (whsec_...); else generated")


class TestQueued(Out):
    message_id: str
    task_id: str | None


class AttemptQuery(Query):
    outcome: Literal["succeeded", "failed"] | None = None
    limit: whole(1, 500) = Field(100, description="At most this many attempts")


class Attempt(Out):
    message_id: str
    webhook_id: str | None
    event_id: str | None
    event_type: str | None
    attempt: int
    started_at: Timestamp | None
    outcome: str | None
    status_code: int | None
    latency_ms: float | None
    response: str | None = Field(description="What the receiver answered (or the error)")
    message_status: str
    next_retry_at: Timestamp | None

    @classmethod
    def of(cls, attempt: Any, message: Any, task: Any) -> Attempt:
        return cls(
            message_id=message.id,
            webhook_id=message.webhook_id,
            event_id=message.event_id,
            event_type=message.event_type,
            attempt=attempt.number,
            started_at=_iso(attempt.started_at),
            outcome=attempt.outcome,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            response=attempt.detail,
            message_status=task.status,
            next_retry_at=_iso(task.run_after) if task.status == "queued" else None,
        )


class AttemptList(Out):
    attempts: list[Attempt] = Field(description="Newest first")


class SubscriptionReplayBody(Body):
    """One message (``event_id``) or every message that failed ``since``."""

    event_id: str | None = None
    since: str | None = Field(None, description="ISO 8601 time")


class SubscriptionReplayed(Out):
    replayed: int
    message_ids: list[str]
