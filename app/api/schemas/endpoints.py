"""Endpoints, their commands and the dry run as the API shows and changes them
(``/api/endpoints``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictBool

from app.api.schemas import Body, Out, Timestamp
from app.webhooks import reply_settings
from app.webhooks.cli import endpoint_url
from app.webhooks.views_support import CommandView, EndpointRow, iso, secret_display


class SecretInfo(Out):
    """Where the endpoint's secret is kept; never the secret itself."""

    stored: Literal["env", "encrypted"]
    env: str | None = Field(description="The environment variable holding it")
    masked: str


class EndpointBase(Out):
    id: str
    provider: str
    name: str
    url: str = Field(description="Where the provider sends webhooks")
    path: str
    enabled: bool
    settings: dict[str, Any] = Field(description="Provider settings (secrets left out)")
    source: Literal["console", "config"]
    config_file: str | None
    read_only: bool = Field(description="Declared in a config file: change it there")
    created_at: Timestamp | None
    delivery_count: int
    last_delivery_at: Timestamp | None

    @classmethod
    def fields_of(cls, row: EndpointRow) -> dict[str, Any]:
        endpoint = row.endpoint
        return {
            "id": endpoint.id,
            "provider": endpoint.provider,
            "name": endpoint.name,
            "url": endpoint_url(endpoint),
            "path": endpoint.path,
            "enabled": endpoint.enabled,
            "settings": reply_settings.public(endpoint.settings),
            "source": endpoint.source,
            "config_file": endpoint.config_file,
            "read_only": endpoint.source == "config",
            "created_at": iso(endpoint.created_at),
            "delivery_count": row.delivery_count,
            "last_delivery_at": iso(row.last_delivery_at),
        }


class Endpoint(EndpointBase):
    secret: SecretInfo

    @classmethod
    def of(cls, row: EndpointRow) -> Endpoint:
        endpoint = row.endpoint
        secret = SecretInfo(
            stored="env" if endpoint.secret_env else "encrypted",
            env=endpoint.secret_env,
            masked=secret_display(endpoint),
        )
        return cls(**cls.fields_of(row), secret=secret)


class EndpointWithSecret(EndpointBase):
    """The endpoint and its clear secret, shown only in this answer."""

    secret: str

    @classmethod
    def of(cls, row: EndpointRow, secret: str) -> EndpointWithSecret:
        return cls(**cls.fields_of(row), secret=secret)


class EndpointList(Out):
    endpoints: list[Endpoint]


class EndpointCreate(Body):
    provider: str = Field(max_length=40)
    name: str | None = Field(None, max_length=200)
    secret: str | None = Field(None, description="Generated when absent (Slack: give yours)")
    settings: dict[str, Any] | None = None


class EndpointPatch(Body):
    hints: ClassVar[dict[str, str]] = {
        "secret": "change the secret with POST /api/endpoints/<id>/rotate-secret",
        "provider": "the provider cannot change: create another endpoint",
    }

    name: str | None = Field(None, max_length=200)
    enabled: StrictBool | None = None
    settings: dict[str, Any] | None = None


class EndpointSecretBody(Body):
    secret: str | None = Field(None, description="Set this one (e.g. Slack's); else generated")


class EndpointDeleted(Out):
    deleted: str
    deliveries_deleted: int


# -- commands ------------------------------------------------------------------------------


class Condition(Body):
    path: str = Field(description="Dotted path into the payload, e.g. issue.title")
    op: str = Field(description="equals, contains, ... (see the console's command editor)")
    value: Any = None


class CommandFields(Body):
    """A command definition; ``name``, ``trigger`` and ``action`` are needed to create one.
    The values are checked by the command rules (``invalid_command`` naming the field)."""

    name: str | None = Field(None, max_length=100)
    aliases: list[str] | None = None
    description: str | None = None
    trigger: list[str] | str | None = Field(None, description="Event types (patterns)")
    conditions: list[Condition] | None = None
    priority: int | None = None
    action: str | None = None
    title_template: str | None = None
    timeline_template: str | None = None
    reply_template: str | None = None
    stop_after_match: StrictBool | None = None
    enabled: StrictBool | None = None
    builtin: StrictBool | None = Field(None, description="Ignored (as GET shows it)")
    agent: str | None = None
    prompt_template: str | None = None
    reply: StrictBool | None = None
    requires_approval: StrictBool | None = None
    subscription: str | None = Field(None, description="forward: the subscription id")

    def given(self) -> dict[str, Any]:
        """What the client sent, as the command rules read it (``builtin`` left out)."""
        data = self.model_dump(exclude_unset=True, exclude={"builtin"})
        if "conditions" in data and data["conditions"] is not None:
            data["conditions"] = [c.model_dump() for c in self.conditions or []]
        return data


class ConditionOut(Out):
    path: str
    op: str
    value: Any = None


class Command(Out):
    """A command in force: its definition, plus where it comes from."""

    name: str
    aliases: list[str]
    description: str
    trigger: list[str]
    conditions: list[ConditionOut]
    priority: int
    action: str
    title_template: str
    timeline_template: str
    reply_template: str
    stop_after_match: bool
    enabled: bool
    builtin: bool
    agent: str | None = None
    prompt_template: str | None = None
    reply: bool | None = None
    requires_approval: bool | None = None
    subscription: str | None = None
    kind: Literal["builtin", "dynamic", "override"]
    source: str = Field(description="builtin, or the stored record's: console, api, config")
    badges: list[str]
    deletable: bool
    updated_at: Timestamp | None

    @classmethod
    def of(cls, view: CommandView) -> Command:
        return cls.model_validate(
            {
                **view.command.to_dict(),
                "kind": view.kind,
                "source": view.source,
                "badges": view.badges,
                "deletable": view.deletable,
                "updated_at": iso(view.updated_at),
            }
        )


class CommandList(Out):
    commands: list[Command] = Field(description="In the order they run")


class CommandDeleted(Out):
    deleted: str
    builtin_restored: bool


class DryRunBody(Body):
    """A stored delivery (``delivery_id``: its id or the provider's), a sample
    (``fixture``), or an ``event_type`` with a ``payload``."""

    delivery_id: str | None = Field(None, max_length=200)
    fixture: str | None = Field(None, max_length=200)
    event_type: str | None = Field(None, max_length=200)
    payload: dict[str, Any] | None = None


class DryRunCommand(Out):
    name: str
    builtin: bool
    action: str
    matched: bool
    runs: bool = Field(description="False when an earlier command stops first")
    reason: str
    title: str | None
    timeline: str | None


class DryRunSubject(Out):
    event_type: str
    commands: list[DryRunCommand]


class DryRun(Out):
    source: str
    event_type: str
    subjects: list[DryRunSubject]

    @classmethod
    def of(cls, result: Any) -> DryRun:
        return cls(
            source=result.source,
            event_type=result.event_type,
            subjects=[
                DryRunSubject(
                    event_type=subject_type,
                    commands=[
                        DryRunCommand(
                            name=row.command.name,
                            builtin=row.command.builtin,
                            action=row.command.action,
                            matched=row.matched,
                            runs=row.runs,
                            reason=row.reason,
                            title=row.title,
                            timeline=row.timeline,
                        )
                        for row in rows
                    ],
                )
                for subject_type, rows in result.subjects
            ],
        )


class DraftBody(Body):
    description: str = Field(max_length=4000, description="What the command should do")


class DraftDryRun(Out):
    model_config = ConfigDict(extra="allow")

    checked: int
    matched: int
    runs: int
    results: list[dict[str, Any]]


class Drafted(Out):
    command: dict[str, Any] = Field(description="A definition to POST to .../commands")
    model: str
    dry_run: DraftDryRun
