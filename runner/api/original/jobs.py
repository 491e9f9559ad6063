"""Jobs and runs in the original's dialect: ``/jobs``, ``/jobs/:id/...``.

Same domain functions as ``runner.api.jobs`` and ``runner.api.runs``; the
original's envelopes (``{ok: true}``), row shapes and ``Job not found`` refusals.
The jobs written here are the original's, read with its meaning
(``runner.original_rules``): those its plugin creates run their inline scripts with node.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Status

from jeeves_site.echo import shortened
from runner import manual
from runner.api.body import json_object
from runner.api.errors import Conflict, NotFound, bad_input, invalid
from runner.api.jobs import (
    CREATE_FIELDS,
    UPDATE_FIELDS,
    change_job_fields,
    could_exist,
    jobs_with_last_run,
    write_job,
)
from runner.api.original.access import authorize
from runner.api.original.shapes import job_row, listed_job_row, run_result, run_row
from runner.api.runs import MAX_RUNS, start_manual_run, wait_for_run
from runner.jobs import Change, remove_jobs, set_enabled
from runner.models import FINAL_RUN_STATUSES, Job, Run
from runner.original_rules import as_original

router = Router()
logger = logging.getLogger(__name__)
JOB_NOT_FOUND = "Job not found"


def _job(job_id: str, not_found: str = JOB_NOT_FOUND) -> Job:
    # An id no job could have (a NUL: an error on PostgreSQL, a miss on SQLite) is not
    # looked up, so both answer 404.
    job = Job.objects.filter(pk=job_id).first() if could_exist(job_id) else None
    if job is None:
        raise NotFound(not_found)
    return job


def _known(body: dict, names: tuple[str, ...]) -> dict:
    """The body's fields among ``names``: the original's zod schemas drop other keys."""
    return {name: value for name, value in body.items() if name in names}


def _as_original(fields: dict, current_interpreter: str | None = None) -> dict:
    try:
        fields, notes = as_original(fields, current_interpreter)
    except ValidationError as exc:
        raise invalid(exc, Job) from None
    for note in notes:  # the original's answers have no place for them
        logger.warning("job %s: %s", shortened(str(fields.get("id", ""))), note)
    return fields


@router.get("/jobs")
def list_jobs(request: HttpRequest) -> dict:
    """``{jobs: [row + last_status, last_run]}``."""
    authorize(request, "jobs.list")
    return {"jobs": [listed_job_row(job) for job in jobs_with_last_run().order_by("id")]}


@router.post("/jobs", response={201: dict})
def create_job(request: HttpRequest) -> Status:
    """201 ``{ok: true, id}``; 400 ``{error}``; 409 when the id exists (the original: 500)."""
    authorize(request, "jobs.create")
    fields = _known(json_object(request), CREATE_FIELDS)
    missing = [name for name in ("id", "name", "schedule", "script") if not fields.get(name)]
    if missing:
        raise bad_input(dict.fromkeys(missing, "is required"))
    with transaction.atomic():
        job, change = write_job(_as_original(fields))
        if change != Change.ADDED:  # rolls back what the upsert changed
            raise Conflict(f"job {job.id!r} already exists")
    return Status(201, {"ok": True, "id": job.id})


@router.get("/jobs/{job_id}")
def job_detail(request: HttpRequest, job_id: str) -> dict:
    """``{job: row}``; 404 ``{error: "Job not found"}``."""
    authorize(request, "jobs.detail")
    return {"job": job_row(_job(job_id))}


@router.patch("/jobs/{job_id}")
def change_job(request: HttpRequest, job_id: str) -> dict:
    """Change the fields given: ``{ok: true}``."""
    authorize(request, "jobs.update")
    fields = _known(json_object(request), (*UPDATE_FIELDS, "id"))
    if fields.pop("id", job_id) != job_id:
        raise bad_input({"id": "a job's id cannot be changed"})
    job = _job(job_id)
    change_job_fields(job_id, _as_original(fields, job.interpreter))
    return {"ok": True}


@router.delete("/jobs/{job_id}")
def delete_job(request: HttpRequest, job_id: str) -> dict:
    """Delete the job and its runs: ``{ok: true}``."""
    authorize(request, "jobs.delete")
    if not could_exist(job_id) or job_id not in remove_jobs([job_id]):
        raise NotFound(JOB_NOT_FOUND)
    return {"ok": True}


def _set_enabled(request: HttpRequest, job_id: str, enabled: bool) -> dict:
    authorize(request, "jobs.enable" if enabled else "jobs.disable")
    _job(job_id)
    set_enabled([job_id], enabled)
    return {"ok": True}


@router.patch("/jobs/{job_id}/enable")
def enable_job(request: HttpRequest, job_id: str) -> dict:
    """``{ok: true}``."""
    return _set_enabled(request, job_id, True)


@router.patch("/jobs/{job_id}/disable")
def disable_job(request: HttpRequest, job_id: str) -> dict:
    """``{ok: true}``."""
    return _set_enabled(request, job_id, False)


@router.put("/jobs/{job_id}/script")
def replace_script(request: HttpRequest, job_id: str) -> dict:
    """``{script, source_type?}`` → ``{ok: true}``."""
    authorize(request, "jobs.script")
    fields = _known(json_object(request), ("script", "source_type"))
    if not fields.get("script"):
        raise bad_input({"script": "is required"})
    job = _job(job_id)
    change_job_fields(job_id, _as_original(fields, job.interpreter))
    return {"ok": True}


@router.post("/jobs/{job_id}/run", response={200: dict, 202: dict})
def trigger_job(request: HttpRequest, job_id: str) -> Status:
    """Run the job now and answer when it has finished: ``{result: {...}}``.

    Waits up to ``JEEVES_API_RUN_WAIT_MAX_S`` (default an hour); a run still going
    then gets 202 ``{runId, status}`` and goes on. An unknown job is 404
    ``{error: "Job not found: <id>"}`` as in the original.
    """
    authorize(request, "jobs.run")
    job = _job(job_id, f"Job not found: {shortened(job_id)}")
    longest = settings.API_RUN_WAIT_MAX_S
    run = wait_for_run(start_manual_run(job), longest, limit_s=longest)
    if run.status in FINAL_RUN_STATUSES:
        return Status(200, {"result": run_result(run)})
    note = manual.pending_note(run, timezone.now())
    return Status(
        202, {"runId": run.pk, "status": run.status} | ({"message": note} if note else {})
    )


@router.get("/jobs/{job_id}/runs")
def job_runs(request: HttpRequest, job_id: str, limit: int = 50) -> dict:
    """``{runs: [row]}``, newest first; an unknown job has none."""
    authorize(request, "runs.list")
    if not 0 <= limit <= MAX_RUNS:
        raise bad_input({"limit": f"must be between 0 and {MAX_RUNS}, not {limit}"})
    if not could_exist(job_id):
        return {"runs": []}
    runs = Run.objects.filter(job_id=job_id).select_related("job").order_by("-id")[:limit]
    return {"runs": [run_row(run) for run in runs]}
