"""Jobs: list, detail, create, partial update, delete, enable, disable, script, trigger."""

from __future__ import annotations

from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from ninja import Router

from runner.api.errors import NotFound
from runner.api.schemas import ErrorOut, JobDetailOut, JobListOut
from runner.models import Job, Run

router = Router(tags=["jobs"])


def _latest_run(field: F | Coalesce) -> Subquery:
    # One probe of the runs_job_newest index per job, inside the one query.
    newest = Run.objects.filter(job=OuterRef("pk")).order_by("-id")
    return Subquery(newest.annotate(value=field).values("value")[:1])


def jobs_with_last_run() -> QuerySet:
    """Jobs annotated with their newest run's status and when it ran (started, else created)."""
    return Job.objects.annotate(
        last_status=_latest_run(F("status")),
        last_run=_latest_run(Coalesce(F("started_at"), F("created_at"))),
    )


def get_job(job_id: str) -> Job:
    """The job, or a 404 naming it."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


@router.get("/jobs", response=JobListOut, summary="Every job with its last run's status")
def list_jobs(request: HttpRequest) -> dict:
    """All jobs in id order, each with ``last_status`` and ``last_run`` (one query)."""
    return {"jobs": list(jobs_with_last_run().order_by("id"))}


@router.get("/jobs/{job_id}", response={200: JobDetailOut, 404: ErrorOut}, summary="One job")
def job_detail(request: HttpRequest, job_id: str) -> dict:
    """One job with its last run's status."""
    job = jobs_with_last_run().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return {"job": job}
