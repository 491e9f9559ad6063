"""Runs: trigger one now, a job's history, one run by id."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Status

from runner import manual
from runner.api.errors import NotFound, bad_input
from runner.api.jobs import get_job
from runner.api.permissions import require
from runner.api.schemas import ErrorOut, RunDetailOut, RunListOut, RunStartedOut, TriggerOut
from runner.models import FINAL_RUN_STATUSES, Job, Run, RunStatus
from statestore.values import MAX_BIGINT

router = Router(tags=["runs"])
MAX_RUNS = 1000
DEFAULT_WAIT_S = manual.WEB_WAIT_LIMIT_S
MAX_WAIT_S = 3600.0


@router.post(
    "/jobs/{job_id}/run",
    response={200: TriggerOut, 202: RunStartedOut, 400: ErrorOut, 404: ErrorOut},
    summary="Run a job now",
)
def trigger_job(
    request: HttpRequest, job_id: str, wait: bool = True, max_wait: float = DEFAULT_WAIT_S
) -> Status:
    """Record a manual run, hand it to the workers, and return its result.

    The run is executed by the same workers as scheduled runs (it counts toward
    ``maxConcurrency``), never by this web process, so a web worker's death ends no
    run. ``wait=false`` answers 202 with the run id at once; otherwise the request
    waits on the run row up to ``max_wait`` seconds, capped at 25 s (below gunicorn's
    30 s worker timeout), then answers 202 likewise (follow the run with
    ``GET /api/runs/{id}``). A run no worker has started yet answers 202 with status
    ``pending`` and a ``message`` saying so.
    """
    require(request, "jobs.run")
    if not 0 <= max_wait <= MAX_WAIT_S:
        raise bad_input({"max_wait": f"must be between 0 and {MAX_WAIT_S:.0f} seconds"})
    run = start_manual_run(get_job(job_id))
    if wait:
        run = wait_for_run(run, max_wait)
    if run.status in FINAL_RUN_STATUSES:
        return Status(200, {"result": _result(run)})
    body = {"runId": run.pk, "status": run.status}
    note = manual.pending_note(run, timezone.now()) if wait else None
    return Status(202, body | ({"message": note} if note else {}))


def start_manual_run(job: Job) -> Run:
    """Record a manual run of ``job`` and hand it to the workers; return it at once.

    Both dialects' triggers call this (``/api/`` and the root's ``POST /jobs/{id}/run``).
    """
    [run] = manual.request_runs([job], timezone.now())
    return run


def wait_for_run(run: Run, max_wait_s: float, limit_s: float = manual.WEB_WAIT_LIMIT_S) -> Run:
    """The run re-read once it has finished, or after ``max_wait_s`` seconds, capped at
    ``limit_s`` (by default ``manual.WEB_WAIT_LIMIT_S``)."""
    return manual.wait_for(run, max_wait_s, limit_s)


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
    require(request, "runs.list")
    if not 1 <= limit <= MAX_RUNS:
        raise bad_input({"limit": f"must be between 1 and {MAX_RUNS}, not {limit}"})
    job = get_job(job_id)
    return {"runs": list(Run.objects.filter(job=job).order_by("-id")[:limit])}


@router.get("/runs/{run_id}", response={200: RunDetailOut, 404: ErrorOut}, summary="One run")
def run_detail(request: HttpRequest, run_id: int) -> dict:
    """One run, e.g. to follow a run started with ``wait=false``.

    While it is ``running``, ``live`` is true and stdout/stderr are the tails so far
    (the executor rewrites them about every second); once it ends, the final record.
    """
    require(request, "runs.detail")
    run = Run.objects.filter(pk=run_id).first() if 0 < run_id <= MAX_BIGINT else None
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return {"run": run, "live": run.status == RunStatus.RUNNING}
