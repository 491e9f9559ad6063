"""Response shapes, for the OpenAPI schema and the docs.

Field names follow the original runner: job and run rows in snake_case as their
columns, the health and queue summaries in the original's camelCase.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field


def body_doc(schema: type[Schema], required: bool = True) -> dict[str, Any]:
    """OpenAPI for a request body that the domain layer, not this schema, validates."""
    content = {"application/json": {"schema": schema.model_json_schema()}}
    return {"requestBody": {"required": required, "content": content}}


class ErrorOut(Schema):
    """Every refusal: a one-line message, and for bad input each field's reasons."""

    error: str
    fields: dict[str, list[str]] | None = None


class OkOut(Schema):
    ok: bool = True


class JobOut(Schema):
    id: str
    name: str
    description: str
    type: str
    schedule: str
    timezone: str
    script: str
    source_type: str
    interpreter: str
    enabled: bool
    timeout_ms: int | None
    overlap_policy: str
    missed_fire_policy: str
    thinking: str
    on_failure: str
    on_success: str
    output_channel: str
    env: dict[str, Any]
    args: list[Any]
    alert_after_failures: int
    alert_reminder_hours: int
    late_grace_s: int | None
    slow_factor: float
    retries: int
    retry_backoff_s: int
    webhook_url: str
    created_at: datetime
    updated_at: datetime
    last_status: str | None = None
    last_run: datetime | None = None


class JobListOut(Schema):
    jobs: list[JobOut]


class JobDetailOut(Schema):
    job: JobOut
    warnings: list[str] = Field(
        default=[], description="after a change: what was accepted but will not work yet"
    )


class RunOut(Schema):
    id: int
    job_id: str
    status: str
    trigger: str
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    lag_ms: int | None
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    output_truncated: bool
    tokens: int | None
    result_meta: Any = None
    error: str
    worker: str
    retry_of_id: int | None = Field(None, description="the failed run this one retries")
    attempt: int = Field(1, description="1 for a first try, 2 for its first retry, ...")
    catch_up: bool = Field(
        False,
        description="a run for a fire missed while no scheduler ran (missed-fire policy all), "
        "or a retry of one: under overlap skip these run one at a time, oldest first",
    )


class RunListOut(Schema):
    runs: list[RunOut]


class RunDetailOut(Schema):
    run: RunOut
    live: bool = Field(
        description="true while the run is running: its stdout and stderr are then the "
        "current tails, which the executor rewrites about every second until the final record"
    )


class JobIn(Schema):
    """A job's fields, as the original runner's API took them; only ``id``, ``name``,
    ``schedule`` and ``script`` are needed to create one, any subset to change one."""

    id: str
    name: str
    schedule: str | dict[str, Any] = Field(
        description="cron, or the original runner's recurrence object (RRStack JSON), "
        "as an object or as its JSON text"
    )
    script: str
    description: str = ""
    type: Literal["script", "session"] = "script"
    source_type: Literal["path", "inline"] = "path"
    interpreter: str = ""
    enabled: bool = True
    timeout_ms: int | None = None
    timeout_seconds: float | None = None
    overlap_policy: Literal["skip", "allow"] = "skip"
    missed_fire_policy: Literal["skip", "latest", "all"] = "skip"
    thinking: Literal["low", "medium", "high"] = "low"
    timezone: str = ""
    on_failure: str = ""
    on_success: str = ""
    output_channel: str = ""
    env: dict[str, str] = {}
    args: list[str] = []
    alert_after_failures: int = Field(
        1, description="alert once this many runs in a row failed (1 to 10,000)"
    )
    alert_reminder_hours: int = Field(0, description="remind every N hours (0: never)")
    late_grace_s: int | None = Field(
        None,
        description="seconds past a due fire with no run before a late alert (60 s to 30 "
        "days; null: one schedule period + 1 minute, at least 5 minutes)",
    )
    slow_factor: float = Field(
        3.0, description="slow past this many times the p95 duration (0: off; 1 to 1000)"
    )
    retries: int = Field(0, description="retries of a failed or timed-out run (0 to 10)")
    retry_backoff_s: int = Field(
        30, description="seconds before the first retry, doubling, at most 1 h (1 to 3600)"
    )
    webhook_url: str = Field(
        "", description="http(s) URL for this job's alerts as JSON; blank: the default"
    )


class ScriptIn(Schema):
    script: str
    source_type: Literal["path", "inline"] | None = None


class ScriptReplacedOut(Schema):
    ok: bool = True
    warnings: list[str] = Field(
        default=[], description="what was accepted but will not work yet (a missing script)"
    )


class CreatedJobOut(Schema):
    ok: bool = True
    id: str
    job: JobOut
    warnings: list[str] = Field(
        default=[], description="what was accepted but will not work yet (a missing script)"
    )


class DeletedJobOut(Schema):
    ok: bool = True
    deletedRuns: int


class RunResultOut(Schema):
    """A finished run as the original runner's trigger returned it."""

    runId: int
    status: str
    durationMs: int | None
    exitCode: int | None
    tokens: int | None
    resultMeta: Any = None
    error: str | None
    stdoutTail: str | None
    stderrTail: str | None


class TriggerOut(Schema):
    result: RunResultOut


class RunStartedOut(Schema):
    runId: int
    status: str
    message: str | None = None


class QueueListOut(Schema):
    queues: list[str]


class QueueStatusOut(Schema):
    depth: int
    claimedCount: int
    failedCount: int
    completedCount: int
    oldestAge: int | None  # milliseconds since the oldest pending item was added


class PeekedItemOut(Schema):
    id: int
    payload: Any
    priority: int
    attempts: int
    createdAt: datetime


class PeekOut(Schema):
    items: list[PeekedItemOut]


class EnqueueIn(Schema):
    payload: Any
    priority: int = 0
    max_attempts: int | None = None


class EnqueuedOut(Schema):
    id: int | None  # None when the queue de-duplicated the payload
    duplicate: bool


class DequeueIn(Schema):
    count: int = 1
    lease: int | float | str | None = None  # seconds, or a duration such as "90s", "5m"


class ClaimedItemOut(Schema):
    id: int
    payload: Any
    attempts: int
    maxAttempts: int
    leaseExpiresAt: datetime
    token: str  # send it back with done or fail


class ClaimedOut(Schema):
    items: list[ClaimedItemOut]


class TokenIn(Schema):
    token: str


class FailIn(Schema):
    token: str
    error: str | None = None


class FailedOut(Schema):
    ok: bool = True
    status: Literal["pending", "failed"]


class NamespacesOut(Schema):
    namespaces: list[str]


class StateItemOut(Schema):
    itemKey: str
    value: Any = None
    updatedAt: datetime
    expiresAt: datetime | None


class KeyOut(Schema):
    value: Any = None
    expiresAt: datetime | None
    updatedAt: datetime | None
    items: list[StateItemOut]
    count: int  # items listed here
    total: int  # live items the key holds


class ValueIn(Schema):
    value: Any
    ttl: str | None = None  # "90s", "60m", "24h", "30d"; none: never expires


class ItemIn(Schema):
    value: Any = None
    ttl: str | None = None


class ItemOut(Schema):
    itemKey: str
    value: Any = None
