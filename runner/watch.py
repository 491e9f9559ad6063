"""The scheduler's periodic alert check: late jobs, slow runs, due retries (issue 16).

``Watch.tick(now)`` is one call in the daemon loop. Every ``RETRY_INTERVAL_S``
(monotonic) it dispatches the retries that are due (``runner.retries``); every
``CHECK_INTERVAL_S`` it also runs ``check_late`` and ``check_slow``, whose alerts go
through the same outbox as the failure alerts (``notify.send_alerts``).

* ``check_late``: a job late at ``now`` (``runner.lateness``) gets a ``late``
  incident, raised at once (one post: "did not run: late since <due>, N missed
  fires"); while it stays late, a reminder with the count every
  ``alert_reminder_hours``; when it is no longer late (a run started), one
  recovery post ("recovered after N missed fires over <span>"). A job disabled
  or deleted meanwhile closes its incident silently.
* ``check_slow``: a running run of a job with ``slow_factor`` > 0 that has run
  longer than ``slow_factor`` times the p95 ``duration_ms`` of the job's last 50
  ``ok`` runs (only once there are 10; at least ``MIN_SLOW_BOUND``) gets a
  ``slow`` incident, raised at once; reminders as above; the recovery is posted
  when the run ends (``runner.incidents.record``), or here if its row is gone.

The one-open-incident-per-job-and-kind constraint keeps two schedulers from
raising the same incident twice: the second insert fails and posts nothing. One
check posts at most ``MAX_POSTS_PER_CHECK`` alerts (a scheduler back after an
outage finds every job late at once); the rest are rows, counted in one warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from runner import incidents, lateness, notify, retries
from runner.incidents import Alert, Event
from runner.models import Incident, IncidentKind, Job, Run, RunStatus

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0
# Pending retries are looked for this often, and dispatched this much ahead of the lead
# (the pool waits for their instant; at most lead + 1 s ahead keeps them on time).
RETRY_INTERVAL_S = 0.5
# Posts one check may send; past this (10,000 jobs late after a scheduler outage) the
# rest are counted in one warning: the incidents are rows all the same, and
# /api/status, the admin and GET /api/incidents list every one.
MAX_POSTS_PER_CHECK = 50
SLOW_SAMPLE = 50  # the last ok runs a p95 is taken from
SLOW_MIN_SAMPLE = 10  # no slow alerts before a job has this many
# A bound below this is raised to it: a job that usually takes 10 ms is not "slow" at 40 ms.
MIN_SLOW_BOUND = timedelta(seconds=1)


class Watch:
    """The periodic alert check of one scheduler process; ``tick`` each loop cycle."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        retry_dispatcher: retries.RetryDispatcher | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._retries = retry_dispatcher or retries.RetryDispatcher()
        self._next_check: float | None = None
        self._next_retries: float | None = None
        self._fires = lateness.FireCache()

    def tick(self, now: datetime) -> bool:
        """Dispatch due retries (every ``RETRY_INTERVAL_S``); check late jobs and slow runs
        when their interval is up. Cheap when nothing is due: the loop calls it every cycle."""
        found = False
        mono = self._monotonic()
        if self._next_retries is None or mono >= self._next_retries:
            self._next_retries = mono + RETRY_INTERVAL_S
            found = self._retries.dispatch_due(now, timedelta(seconds=RETRY_INTERVAL_S))
        if self._next_check is None or mono >= self._next_check:
            self._next_check = mono + CHECK_INTERVAL_S
            self._fires = self._fires.carried()
            alerts = check_late(now, self._fires) + check_slow(now)
            notify.send_alerts(alerts[:MAX_POSTS_PER_CHECK])
            if len(alerts) > MAX_POSTS_PER_CHECK:
                logger.warning(
                    "%d more late/slow alerts in this check were recorded but not posted "
                    "(at most %d posts a check); GET /api/incidents lists them",
                    len(alerts) - MAX_POSTS_PER_CHECK,
                    MAX_POSTS_PER_CHECK,
                )
            found |= bool(alerts)
        return found


# --- late ------------------------------------------------------------------------


def _open_by_job(kind: str) -> dict[str, Incident]:
    """The open incidents of ``kind``, by job id (at most one each: a constraint)."""
    return {incident.job_id: incident for incident in incidents.open_incidents().filter(kind=kind)}


def check_late(now: datetime, fires: lateness.FireCache | None = None) -> list[Alert]:
    """Open, remind and close ``late`` incidents to match ``runner.lateness`` at ``now``;
    ``fires`` is the schedule arithmetic the previous check carried (see ``FireCache``)."""
    fires = fires or lateness.FireCache()
    late = {job.job_id: job for job in lateness.late_jobs(now, fires)}
    open_ = _open_by_job(IncidentKind.LATE)
    alerts: list[Alert] = []
    for job_id, incident in open_.items():
        if job_id not in late:
            alerts += _close_late(incident, now)
    jobs = Job.objects.in_bulk(list(late))
    for job_id, found in late.items():
        job = jobs.get(job_id)
        if job is not None:
            count = fires.count(job.schedule, job.zone_name, found.due, now)
            alerts += _keep_late(job, found, count, open_.get(job_id), now)
    return alerts


def _keep_late(
    job: Job, found: lateness.LateJob, count: int, incident: Incident | None, now: datetime
) -> list[Alert]:
    if incident is None:
        grace = incidents.span_text(found.grace)
        last = found.last_start.strftime("%Y-%m-%d %H:%M:%S %Z") if found.last_start else "never"
        incident = Incident(
            job=job,
            kind=IncidentKind.LATE,
            opened_at=found.due,
            failures=count,
            alerted_at=now,
            detail=f"no run started since the fire due then; grace {grace}, last start {last}",
        )
        try:
            with transaction.atomic():
                incident.save(force_insert=True)
        except IntegrityError:  # another scheduler raised it first
            return []
        return [Alert(Event.RAISED, incident, job, incidents.late_text(job, incident))]
    fields = ["failures"] if incident.failures != count else []
    incident.failures = count
    alerts = []
    if incidents.reminder_due(job, incident, now):
        incident.reminded_at, incident.reminders = now, incident.reminders + 1
        fields += ["reminded_at", "reminders"]
        alerts.append(Alert(Event.REMINDER, incident, job, incidents.reminder_text(job, incident)))
    if fields:  # a long outage of many jobs: no write per job per check when nothing moved
        incident.save(update_fields=fields)
    return alerts


def _close_late(incident: Incident, now: datetime) -> list[Alert]:
    closed = Incident.objects.filter(pk=incident.pk, closed_at__isnull=True).update(closed_at=now)
    incident.closed_at = now
    if not closed or not incident.job.enabled:
        return []  # closed by another scheduler; or disabled: no longer expected to run
    text = incidents.recovery_text(incident.job, incident)
    return [Alert(Event.RECOVERED, incident, incident.job, text)]


# --- slow ------------------------------------------------------------------------


def p95(durations: list[int]) -> int:
    """The 95th percentile of ``durations`` by nearest rank (non-empty list)."""
    ordered = sorted(durations)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def slow_bound(job_id: str, factor: float) -> tuple[timedelta, timedelta] | None:
    """How long a run of the job may run before it is slow, and the p95 it comes
    from; None while there is too little history (or slow alerts are off)."""
    return slow_bounds({job_id: factor})[job_id]


def slow_bounds(
    factors: dict[str, float],
) -> dict[str, tuple[timedelta, timedelta] | None]:
    """``slow_bound`` for each ``{job id: slow factor}``, from one query: each job's
    last ``SLOW_SAMPLE`` ok durations, numbered per job by a window function."""
    wanted = [job_id for job_id, factor in factors.items() if factor]
    recent = (
        Run.objects.filter(job_id__in=wanted, status=RunStatus.OK, duration_ms__isnull=False)
        .annotate(newest=Window(RowNumber(), partition_by=[F("job_id")], order_by=F("id").desc()))
        .filter(newest__lte=SLOW_SAMPLE)
        .values_list("job_id", "duration_ms")
    )
    durations: dict[str, list[int]] = {job_id: [] for job_id in wanted}
    for job_id, duration_ms in recent:
        durations[job_id].append(duration_ms)
    bounds: dict[str, tuple[timedelta, timedelta] | None] = dict.fromkeys(factors)
    for job_id, found in durations.items():
        if len(found) >= SLOW_MIN_SAMPLE:
            usual = timedelta(milliseconds=p95(found))
            bounds[job_id] = max(MIN_SLOW_BOUND, usual * factors[job_id]), usual
    return bounds


def check_slow(now: datetime) -> list[Alert]:
    """Raise and remind ``slow`` incidents of running runs; close those whose run is gone."""
    running = list(
        Run.objects.filter(status=RunStatus.RUNNING, started_at__isnull=False)
        .select_related("job")
        .order_by("id")
    )
    open_ = _open_by_job(IncidentKind.SLOW)
    alerts: list[Alert] = []
    still = {run.pk for run in running}
    for incident in open_.values():
        if incident.last_run_id not in still:  # None: its run was deleted
            alerts += _close_slow_without_run(incident, now)
    bounds = slow_bounds({run.job_id: run.job.slow_factor for run in running})
    for run in running:
        found = bounds[run.job_id]
        if found is None or now - run.started_at <= found[0]:
            continue
        incident = open_.get(run.job_id)
        if incident is None:
            alerts += _raise_slow(run, *found, now)
            open_[run.job_id] = Incident(job=run.job)  # one incident per job at a time
        elif incident.pk and incident.last_run_id == run.pk:
            alerts += _remind_slow(incident, now)
    return alerts


def _raise_slow(run: Run, bound: timedelta, usual: timedelta, now: datetime) -> list[Alert]:
    job = run.job
    factor = f"{job.slow_factor:g}"
    p95_text = incidents.span_text(usual) if usual >= timedelta(seconds=1) else "under 1 s"
    incident = Incident(
        job=job,
        kind=IncidentKind.SLOW,
        opened_at=run.started_at + bound,
        failures=1,
        first_run=run,
        last_run=run,
        last_run_seen=run.pk,
        alerted_at=now,
        detail=(
            f"run #{run.pk} has been running for {incidents.span_text(now - run.started_at)}, "
            f"over {factor} times its p95 of {p95_text} (bound {incidents.span_text(bound)})"
        ),
    )
    try:
        with transaction.atomic():
            incident.save(force_insert=True)
    except IntegrityError:  # another scheduler raised it first
        return []
    return [Alert(Event.RAISED, incident, job, incidents.slow_text(job, incident), run.pk)]


def _remind_slow(incident: Incident, now: datetime) -> list[Alert]:
    job = incident.job
    if not incidents.reminder_due(job, incident, now):
        return []
    incident.reminded_at, incident.reminders = now, incident.reminders + 1
    incident.save(update_fields=["reminded_at", "reminders"])
    text = incidents.reminder_text(job, incident)
    return [Alert(Event.REMINDER, incident, job, text, incident.last_run_id)]


def _close_slow_without_run(incident: Incident, now: datetime) -> list[Alert]:
    """A slow incident whose run is no longer running but was not closed as it finished
    (its row deleted, or the finishing process failed before recording)."""
    run = Run.objects.filter(pk=incident.last_run_id).only("status", "finished_at").first()
    closed_at = (run.finished_at if run is not None else None) or now
    closed = Incident.objects.filter(pk=incident.pk, closed_at__isnull=True).update(
        closed_at=closed_at
    )
    if not closed:
        return []
    incident.closed_at = closed_at
    status = run.status if run is not None else "deleted"
    text = incidents.slow_recovery_text(incident.job, incident, status)
    return [Alert(Event.RECOVERED, incident, incident.job, text, incident.last_run_id)]
