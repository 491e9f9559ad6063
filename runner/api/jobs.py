"""Jobs: list, detail, create, partial update, delete, enable, disable, script, trigger."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from ninja import Router, Status

from jeeves_site.echo import echoed
from runner.api.body import json_object
from runner.api.errors import Conflict, NotFound, bad_input, invalid
from runner.api.permissions import require
from runner.api.schemas import (
    CreatedJobOut,
    DeletedJobOut,
    ErrorOut,
    JobDetailOut,
    JobIn,
    JobListOut,
    OkOut,
    ScriptIn,
    ScriptReplacedOut,
    body_doc,
)
from runner.jobs import (
    JOB_FIELDS,
    Change,
    newest_runs_not_pending,
    remove_jobs,
    set_enabled,
    upsert_job,
)
from runner.models import Job, job_id_validator
from runner.sync import job_fields

router = Router(tags=["jobs"])

# The original runner's API took timeout_seconds; timeout_ms is this runner's own.
CREATE_FIELDS = (*JOB_FIELDS, "timeout_seconds")
UPDATE_FIELDS = tuple(name for name in CREATE_FIELDS if name != "id")
WRITE_ERRORS = {400: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut}


def _latest_run(field: F | Coalesce) -> Subquery:
    newest = newest_runs_not_pending()
    return Subquery(newest.annotate(value=field).values("value")[:1])


def jobs_with_last_run() -> QuerySet:
    """Jobs annotated with their newest run's status and when it ran (started, else
    created), leaving out the pending next run (``newest_runs_not_pending``), as the
    original runner, which records a run only when it starts, never shows one."""
    return Job.objects.annotate(
        last_status=_latest_run(F("status")),
        last_run=_latest_run(Coalesce(F("started_at"), F("created_at"))),
    )


def could_exist(job_id: str) -> bool:
    """Whether ``job_id`` is a valid job id, so worth looking up: a NUL in a lookup is an
    error on PostgreSQL and a miss on SQLite, and both must answer 404."""
    try:
        job_id_validator(job_id)
    except ValidationError:
        return False
    return len(job_id) <= Job._meta.pk.max_length


def get_job(job_id: str) -> Job:
    """The job, or a 404 naming it."""
    job = Job.objects.filter(pk=job_id).first() if could_exist(job_id) else None
    if job is None:
        raise NotFound(f"job {echoed(job_id)} not found")
    return job


@router.get("/jobs", response=JobListOut, summary="Every job with its last run's status")
def list_jobs(request: HttpRequest) -> dict:
    """All jobs in id order, each with ``last_status`` and ``last_run`` (one query)."""
    require(request, "jobs.list")
    return {"jobs": list(jobs_with_last_run().order_by("id"))}


@router.get("/jobs/{job_id}", response={200: JobDetailOut, 404: ErrorOut}, summary="One job")
def job_detail(request: HttpRequest, job_id: str) -> dict:
    """One job with its last run's status."""
    require(request, "jobs.detail")
    job = jobs_with_last_run().filter(pk=job_id).first() if could_exist(job_id) else None
    if job is None:
        raise NotFound(f"job {echoed(job_id)} not found")
    return {"job": job}


def write_job(fields: dict[str, Any]) -> tuple[Job, Change]:
    """Upsert a job from the API's fields; 400 naming the fields when invalid."""
    try:
        return upsert_job(job_fields(fields))
    except ValidationError as exc:
        raise invalid(exc, Job) from None


@router.post(
    "/jobs",
    response={201: CreatedJobOut, **WRITE_ERRORS},
    openapi_extra=body_doc(JobIn),
    summary="Create a job",
)
def create_job(request: HttpRequest) -> Status:
    """Create a job from the original runner's fields; 409 if the id exists."""
    require(request, "jobs.create")
    fields = json_object(request, CREATE_FIELDS)
    with transaction.atomic():
        job, change = write_job(fields)
        if change != Change.ADDED:  # rolls back what the upsert changed
            raise Conflict(f"job {job.id!r} already exists; PATCH /api/jobs/{job.id} changes it")
    return Status(201, {"ok": True, "id": job.id, "job": job, "warnings": job.warnings()})


@router.patch(
    "/jobs/{job_id}",
    response={200: JobDetailOut, **WRITE_ERRORS},
    openapi_extra=body_doc(JobIn),
    summary="Change some of a job's fields",
)
def update_job(request: HttpRequest, job_id: str) -> dict:
    """Change only the fields given; the rest stay as they are."""
    require(request, "jobs.update")
    fields = json_object(request, (*UPDATE_FIELDS, "id"))
    if fields.pop("id", job_id) != job_id:
        raise bad_input({"id": "a job's id cannot be changed"})
    job = change_job_fields(job_id, fields)
    return {"job": job, "warnings": job.warnings()}


def change_job_fields(job_id: str, fields: dict[str, Any]) -> Job:
    """Change only ``fields`` of an existing job; 404 when it is gone."""
    with transaction.atomic():
        get_job(job_id)
        job, change = write_job({"id": job_id, **fields})
        if change == Change.ADDED:  # deleted meanwhile; do not bring it back
            raise NotFound(f"job {echoed(job_id)} not found")
    return job


@router.delete(
    "/jobs/{job_id}", response={200: DeletedJobOut, 404: ErrorOut}, summary="Delete a job"
)
def delete_job(request: HttpRequest, job_id: str) -> dict:
    """Delete the job and all its runs."""
    require(request, "jobs.delete")
    removed = remove_jobs([job_id]) if could_exist(job_id) else {}
    if job_id not in removed:
        raise NotFound(f"job {echoed(job_id)} not found")
    return {"ok": True, "deletedRuns": removed[job_id]}


def _set_enabled(job_id: str, enabled: bool) -> dict:
    get_job(job_id)
    set_enabled([job_id], enabled)
    return {"ok": True}


# PATCH as the original runner's current API, POST as its first one.
@router.api_operation(
    ["PATCH", "POST"], "/jobs/{job_id}/enable", response={200: OkOut, 404: ErrorOut}
)
def enable_job(request: HttpRequest, job_id: str) -> dict:
    """Let the scheduler fire the job again."""
    require(request, "jobs.enable")
    return _set_enabled(job_id, True)


@router.api_operation(
    ["PATCH", "POST"], "/jobs/{job_id}/disable", response={200: OkOut, 404: ErrorOut}
)
def disable_job(request: HttpRequest, job_id: str) -> dict:
    """Stop the scheduler firing the job; a run in progress goes on."""
    require(request, "jobs.disable")
    return _set_enabled(job_id, False)


@router.put(
    "/jobs/{job_id}/script",
    response={200: ScriptReplacedOut, **WRITE_ERRORS},
    openapi_extra=body_doc(ScriptIn),
    summary="Replace a job's script",
)
def replace_script(request: HttpRequest, job_id: str) -> dict:
    """Replace the script (and, if given, its source type)."""
    require(request, "jobs.script")
    fields = json_object(request, ("script", "source_type"))
    if "script" not in fields:
        raise bad_input({"script": "is required"})
    job = change_job_fields(job_id, fields)
    return {"ok": True, "warnings": job.warnings()}
