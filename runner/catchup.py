"""Catch-up runs of overlap-``skip`` jobs: one after another, oldest first.

Missed-fire policy ``all`` records a run for every missed slot (``runner.missed``),
each marked ``Run.catch_up``, as is a retry of one (``runner.retries``). Under overlap
``skip`` they must neither run together nor skip each other as two live fires would
(README, "Missed fires"):

* ``Run.start`` decides, in the database (on PostgreSQL under the job's row lock), so
  it holds across processes and hosts: a catch-up run starts only when no run of its
  job is running and no catch-up run for an earlier instant is still pending; else it
  stays ``pending`` (``StartResult.WAITING``) and gives its slot back at once. A live
  fire or retry meeting either is skipped, saying which run it gave way to.
* Only the run whose turn it is gets dispatched: the scheduler dispatches each job's
  oldest, and when a run of such a job ends, wherever it ends (``notify.run_finished``;
  a skip before the start, ``runner.tasks``), ``wake_next`` dispatches the next at
  once through the broker, so it starts within the broker's poll on any host.
* A waiting run is not a lost delivery: the liveness check's re-dispatch of stale
  pending runs leaves out ``WAITING_THEIR_TURN`` runs, and so re-dispatches only a
  chain's head whose wake was lost (its predecessor's worker died before waking it,
  or a restart): the chain survives restarts because it lives in the ``runs`` table.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from runner import dispatch
from runner.models import MissedFirePolicy, OverlapPolicy, Run, RunStatus

logger = logging.getLogger(__name__)

# Pending runs that wait for their turn rather than for a worker: catch-up runs of an
# overlap-skip job that has a running run, or a catch-up run for an earlier instant
# still pending. ``Run.start`` would not start them now.
WAITING_THEIR_TURN = Q(catch_up=True, job__overlap_policy=OverlapPolicy.SKIP) & (
    Exists(Run.objects.filter(job_id=OuterRef("job_id"), status=RunStatus.RUNNING))
    | Exists(
        Run.objects.filter(
            job_id=OuterRef("job_id"),
            status=RunStatus.PENDING,
            catch_up=True,
            scheduled_for__lt=OuterRef("scheduled_for"),
        )
    )
)


def wake_next(run: Run, now: datetime) -> int | None:
    """After ``run`` (its job loaded) ended or was skipped: dispatch its job's next
    catch-up run if it is now that run's turn; return its id, or None.

    Costs nothing for jobs that cannot have catch-up runs waiting (overlap ``allow``;
    neither policy ``all`` nor a catch-up run itself). A dispatch that meets a run
    started meanwhile is harmless: ``Run.start`` answers WAITING or GONE.
    """
    job = run.job
    if job.overlap_policy != OverlapPolicy.SKIP:
        return None
    if not run.catch_up and job.missed_fire_policy != MissedFirePolicy.ALL:
        return None
    following = next_in_turn(job.pk, now)
    if following is not None:
        dispatch.dispatch([following])
    return following


def next_in_turn(job_id: str, now: datetime) -> int | None:
    """The job's oldest waiting catch-up run, when nothing of the job is running and
    its instant is within the dispatch lead (a retry of a catch-up run is handed over
    at its instant by ``runner.retries.RetryDispatcher``); else None."""
    if Run.objects.filter(job_id=job_id, status=RunStatus.RUNNING).exists():
        return None
    oldest = (
        Run.objects.filter(job_id=job_id, status=RunStatus.PENDING, catch_up=True)
        .order_by("scheduled_for", "id")
        .values_list("pk", "scheduled_for")
        .first()
    )
    lead = timedelta(milliseconds=settings.RUNNER.dispatch_lead_ms)
    if oldest is None or oldest[1] > now + lead:
        return None
    return oldest[0]
