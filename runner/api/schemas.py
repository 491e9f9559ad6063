"""Response shapes, for the OpenAPI schema and the docs.

Field names follow the original runner: job and run rows in snake_case as their
columns, the health and queue summaries in the original's camelCase.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema


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
    created_at: datetime
    updated_at: datetime
    last_status: str | None = None
    last_run: datetime | None = None


class JobListOut(Schema):
    jobs: list[JobOut]


class JobDetailOut(Schema):
    job: JobOut


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


class RunListOut(Schema):
    runs: list[RunOut]


class RunDetailOut(Schema):
    run: RunOut


class JobIn(Schema):
    """A job's fields, as the original runner's API took them; only ``id``, ``name``,
    ``schedule`` and ``script`` are needed to create one, any subset to change one."""

    id: str
    name: str
    schedule: str
    script: str
    description: str = ""
    type: Literal["script", "session"] = "script"
    source_type: Literal["path", "inline"] = "path"
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


class ScriptIn(Schema):
    script: str
    source_type: Literal["path", "inline"] | None = None


class CreatedJobOut(Schema):
    ok: bool = True
    id: str
    job: JobOut


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

