"""Runs: a job's history, and one run by id."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from runner.api.errors import NotFound, bad_input
from runner.api.jobs import get_job
from runner.api.schemas import ErrorOut, RunDetailOut, RunListOut
from runner.models import Run

router = Router(tags=["runs"])
MAX_RUNS = 1000


@router.get(
    "/jobs/{job_id}/runs",
    response={200: RunListOut, 400: ErrorOut, 404: ErrorOut},
    summary="A job's runs, newest first",
)
def job_runs(request: HttpRequest, job_id: str, limit: int = 50) -> dict:
    """The job's newest ``limit`` runs (1-1000, default 50)."""
    if not 1 <= limit <= MAX_RUNS:
        raise bad_input({"limit": f"must be between 1 and {MAX_RUNS}, not {limit}"})
    job = get_job(job_id)
    return {"runs": list(Run.objects.filter(job=job).order_by("-id")[:limit])}


@router.get("/runs/{run_id}", response={200: RunDetailOut, 404: ErrorOut}, summary="One run")
def run_detail(request: HttpRequest, run_id: int) -> dict:
    """One run, e.g. to follow a run started with ``wait=false``."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return {"run": run}
