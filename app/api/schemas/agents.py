"""Agents (``/api/agents``) and their runs (``/api/agent-runs``).

A definition's rules are ``app.agents.service.clean_definition``'s (shared with the
console, the CLI and config files); the models here give the types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt

from app.agents.models import RUN_STATUSES
from app.api.schemas import Body, Id, Out, Query, Timestamp

RunStatus = Literal[RUN_STATUSES]  # type: ignore[valid-type]


class AgentPatch(Body):
    """The fields to change."""

    name: str | None = Field(None, description="1-100 letters, digits, '.', '_' or '-'")
    argv: list[str] | None = Field(None, description="The program and its arguments")
    description: str | None = None
    workdir: str | None = None
    env: list[str] | None = Field(None, description="Variables passed on from the worker")
    secrets: dict[str, str] | None = Field(
        None, description="Name in the agent's environment → the worker's variable holding it"
    )
    max_concurrent: StrictInt | None = None
    timeout_seconds: StrictInt | None = None
    max_output_bytes: StrictInt | None = None
    retries: StrictInt | None = None


class AgentBody(AgentPatch):
    name: str = Field(description="1-100 letters, digits, '.', '_' or '-'")
    argv: list[str] = Field(description="The program and its arguments")


class Agent(Out):
    name: str
    description: str | None
    argv: list[str]
    workdir: str | None
    env: list[str]
    secrets: dict[str, str]
    max_concurrent: int
    timeout_seconds: int
    max_output_bytes: int
    retries: int
    source: str
    created_at: Timestamp | None
    updated_at: Timestamp | None

    @classmethod
    def of(cls, agent: Any) -> Agent:
        return cls.model_validate(agent.to_dict())


class AgentList(Out):
    agents: list[Agent]


class RunBody(Body):
    agent: str = Field(min_length=1, description="The agent's name")
    prompt: str = Field("", description="Sent on stdin")
    priority: StrictInt = Field(100, description="Lower runs first")
    requires_approval: StrictBool = False


class RunsQuery(Query):
    case_id: Id | None = Field(None, description="Only this case's runs")
    status: RunStatus | None = None


class Run(Out):
    """``stdout``/``stderr``/``exit_code`` are the latest attempt's."""

    id: str
    agent: str
    case_id: int
    status: RunStatus
    prompt: str
    reply: bool
    requested_by: str | None
    approval: str | None
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool
    duration_ms: float | None
    attempts: int
    last_error: str | None
    task_id: str | None
    queued_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    created_at: Timestamp | None

    @classmethod
    def of(cls, run: Any) -> Run:
        return cls.model_validate(run.to_dict())


class RunList(Out):
    agent_runs: list[Run]
