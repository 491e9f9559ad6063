"""Response shapes, for the OpenAPI schema and the docs.

Field names follow the original runner: job and run rows in snake_case as their
columns, the health and queue summaries in the original's camelCase.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema


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
