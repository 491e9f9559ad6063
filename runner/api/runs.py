"""Runs: trigger one now, a job's history, one run by id."""

from __future__ import annotations

import threading
import time

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Status

from runner.api.errors import NotFound, bad_input
from runner.api.jobs import get_job
from runner.api.schemas import ErrorOut, RunDetailOut, RunListOut, RunStartedOut, TriggerOut
from runner.execution.background import execute_in_background
from runner.models import FINAL_RUN_STATUSES, Job, Run

router = Router(tags=["runs"])
MAX_RUNS = 1000
# Below gunicorn's worker timeout (30 s in scripts/start): a worker that overruns it
# is killed, and the runs on its threads with it (the liveness check then ends them).
DEFAULT_WAIT_S = 25.0
MAX_WAIT_S = 3600.0
_pause = threading.Event()  # never set: a sleep that is not time.sleep


@router.post(
    "/jobs/{job_id}/run",
    response={200: TriggerOut, 202: RunStartedOut, 400: ErrorOut, 404: ErrorOut},
    summary="Run a job now",
)
def trigger_job(
    request: HttpRequest, job_id: str, wait: bool = True, max_wait: float = DEFAULT_WAIT_S
) -> Status:
    """Start a manual run through ``execute_run`` and return its result.

    The run executes on a thread of this process (as the admin's "Run now" does),
    never on the request itself, so a client that goes away cannot cut it short and
    no django-q2 worker needs to be running. ``wait=false``
    answers 202 with the run id at once; otherwise the request waits up to
    ``max_wait`` seconds for the result, then answers 202 likewise (follow the run
    with ``GET /api/runs/{id}``).
    """
    if not 0 <= max_wait <= MAX_WAIT_S:
        raise bad_input({"max_wait": f"must be between 0 and {MAX_WAIT_S:.0f} seconds"})
    run = start_manual_run(get_job(job_id))
    if not wait:
        return Status(202, {"runId": run.pk, "status": run.status})
    run = wait_for_run(run, max_wait)
    if run.status in FINAL_RUN_STATUSES:
        return Status(200, {"result": _result(run)})
    return Status(202, {"runId": run.pk, "status": run.status})


def start_manual_run(job: Job) -> Run:
    """Record a manual run of ``job`` and hand it to be executed; return it at once.

    Both dialects' triggers call this (``/api/`` and the root's ``POST /jobs/{id}/run``).
    """
    # Autocommit: the row is committed before the thread (its own connection) looks.
    run = Run.create_manual(job, timezone.now())
    execute_in_background([run.pk])
    return run


def wait_for_run(run: Run, max_wait_s: float) -> Run:
    """The run re-read once it has finished, or after ``max_wait_s`` (monotonic) seconds.

    Reads the row, so it works wherever the run executes; polls every 50 ms at
    first, backing off to one second.
    """
    deadline = time.monotonic() + max_wait_s
    pause = 0.05
    while True:
        run.refresh_from_db()
        left = deadline - time.monotonic()
        if run.status in FINAL_RUN_STATUSES or left <= 0:
            return run
        _pause.wait(min(pause, left))
        pause = min(pause * 2, 1.0)


def _result(run: Run) -> dict:
    """A finished run in the original runner's RunResult shape."""
    return {
        "runId": run.pk,
        "status": run.status,
        "durationMs": run.duration_ms,
        "exitCode": run.exit_code,
        "tokens": run.tokens,
        "resultMeta": run.result_meta,
        "error": run.error or None,
        "stdoutTail": run.stdout or None,
        "stderrTail": run.stderr or None,
    }


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
