"""Manual runs asked for over the web (the admin's "Run now", the API's trigger).

The web process only records the run and hands it to the workers, exactly as the
scheduler does with a fire: the same workers execute it, under the same
``maxConcurrency`` limit, so a web worker killed by its server's timeout ends no run.
The request may then wait on the run row, for at most ``WEB_WAIT_LIMIT_S``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from runner import dispatch
from runner.models import FINAL_RUN_STATUSES, Job, Run, RunStatus, SchedulerHeartbeat

# Below gunicorn's worker timeout (its default, 30 s, which scripts/start keeps): a web
# worker that overruns it is killed. The run would carry on, but the answer would be lost.
WEB_WAIT_LIMIT_S = 25.0
# How often a waiting request reads the run row: quickly at first, then less often.
FIRST_POLL_S = 0.02
MAX_POLL_S = 0.25


def request_runs(jobs: Iterable[Job], now: datetime) -> list[Run]:
    """Record a manual run of each job and dispatch it to the workers; return the runs.

    Inside the caller's transaction the tasks leave when it commits (see
    ``runner.dispatch``); a run whose task is lost stays ``pending`` and the liveness
    check dispatches it again.
    """
    with transaction.atomic():
        runs = [Run.create_manual(job, now) for job in jobs]
        dispatch.dispatch([run.pk for run in runs])
    return runs


def wait_for(
    run: Run,
    timeout_s: float,
    limit_s: float = WEB_WAIT_LIMIT_S,
    clock=time.monotonic,
    sleep=time.sleep,
) -> Run:
    """Re-read ``run`` until it has a final status or ``timeout_s`` (capped at
    ``limit_s``) has passed; return it as last read.

    The root dialect's trigger waits longer than ``WEB_WAIT_LIMIT_S`` (the original's
    clients wait for the whole run): gunicorn's gthread workers keep beating while a
    request thread waits, so a long wait holds a thread, not a worker.
    """
    deadline = clock() + min(max(0.0, timeout_s), limit_s)
    poll = FIRST_POLL_S
    while True:
        run.refresh_from_db()
        left = deadline - clock()
        if run.status in FINAL_RUN_STATUSES or left <= 0:
            return run
        sleep(min(poll, left))
        poll = min(poll * 2, MAX_POLL_S)


def pending_note(run: Run, now: datetime) -> str | None:
    """What to tell the person waiting on a run no worker has started yet; None otherwise."""
    if run.status != RunStatus.PENDING:
        return None
    seen = now - timedelta(milliseconds=3 * settings.RUNNER.heartbeat_interval_ms)
    if not SchedulerHeartbeat.heard_since(seen).exists():
        return (
            "no runscheduler has reported recently, so no worker may be running: the run "
            "stays pending until a worker runs it"
        )
    return "no worker has started the run yet (all busy?); it stays pending until one does"
