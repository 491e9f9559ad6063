"""Which jobs are late: due to fire, and no run started for longer than their grace.

Read-only, so the scheduler's check (``runner.watch``, which raises ``late``
incidents) and ``/api/status`` and the dashboard (which report them even when
Slack, or the scheduler itself, is down) give the same answer.

A job is late at ``now`` when it is enabled and ``due + grace < now``, where
``due`` is the first instant its schedule fires after its last started run (or,
with none, after its schedule took effect), and ``grace`` is the job's
``late_grace_s`` or else one schedule period (``due`` to the fire after it) plus
1 minute, at least 5 minutes. Fires recorded but never started (skipped by
overlap, coalesced, still pending with no worker) do not count as runs: that is
the trouble being reported. A job whose run is still going is late too when its
fires are being skipped past the grace (a stuck run).

One query for all jobs (each job's newest started run is one probe of the
``runs_job_newest_ran`` index); the schedule arithmetic is in Python, through a
``FireCache``: a cron fires on whole minutes (whole seconds with six fields), so
the next fire after an instant is the next fire after that instant's minute
(second), and jobs with one schedule whose last starts fall in the same minute
share one computation. 10,000 jobs that all missed their fires (a scheduler
down) cost a few schedule computations, not 20,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, OuterRef, Q, Subquery

from runner import schedule
from runner.models import Job, Run, RunStatus
from runner.recurrence_text import looks_like_recurrence

_COLUMNS = (
    "id", "name", "schedule", "timezone", "schedule_effective_at", "created_at",
    "late_grace_s", "last_start",
)  # fmt: skip
MIN_GRACE = timedelta(minutes=5)
PERIOD_MARGIN = timedelta(minutes=1)
# Missed fires are counted up to this many (a minutely job down for a week).
MAX_COUNTED_FIRES = 1000


@dataclass(frozen=True)
class LateJob:
    """A late job: the fire that has no run, the grace it had, and its last start."""

    job_id: str
    name: str
    due: datetime
    grace: timedelta
    last_start: datetime | None

    @property
    def late_since(self) -> datetime:
        """When the grace ran out."""
        return self.due + self.grace

    def as_json(self) -> dict:
        """The job as ``/api/status`` lists it under ``health.lateJobs``."""
        return {
            "id": self.job_id,
            "due": self.due,
            "graceSeconds": int(self.grace.total_seconds()),
            "lastStart": self.last_start,
        }


class FireCache:
    """``next_fire_after`` memoized on (schedule text, zone, the instant at its
    schedule's granularity). An entry is a pure function of its key, so it stays true
    when a job's schedule changes (the new text is a new key); ``carried`` keeps the
    entries one pass used for the next, which is what makes a periodic check of
    thousands of rarely-firing jobs cheap after its first pass."""

    def __init__(self, known: dict[tuple[str, str, datetime], datetime] | None = None) -> None:
        self._known = known or {}
        self._fires: dict[tuple[str, str, datetime], datetime] = {}

    def after(self, cron: str, zone: str, moment: datetime) -> datetime:
        """The first fire of ``cron`` in ``zone`` strictly after ``moment`` (ValueError,
        KeyError as ``schedule.next_fire_after``)."""
        key = (cron, zone, _floor(cron, moment))
        fire = self._fires.get(key)
        if fire is None:
            fire = self._known.get(key)
            if fire is None:
                fire = schedule.next_fire_after(cron, zone, key[2])
            self._fires[key] = fire
        return fire

    def carried(self) -> FireCache:
        """A cache for the next pass holding what this pass looked up (only that: the
        entries of fires long past are dropped)."""
        return FireCache(self._fires)

    def count(self, cron: str, zone: str, due: datetime, now: datetime) -> int:
        """Fires from ``due`` to ``now`` (``due`` is one), at most ``MAX_COUNTED_FIRES``."""
        count, at = 0, due
        try:
            while at <= now and count < MAX_COUNTED_FIRES:
                count += 1
                at = self.after(cron, zone, at)
        except (ValueError, KeyError):
            pass
        return max(count, 1)


# Readers polled again and again (``/api/status``, the dashboard) reuse an answer this
# young (by the ``now`` they ask about) while the jobs are unchanged: with 10,000 jobs
# and a million runs the one query is 0.4 s on PostgreSQL. A run started meanwhile may
# clear a late job up to this much later; the grace itself is at least 5 minutes.
READ_REUSE = timedelta(seconds=10)
_last_pass = FireCache()
_last_answer: tuple[datetime, tuple, list[LateJob]] | None = None


def late_jobs_now(now: datetime) -> list[LateJob]:
    """``late_jobs`` for readers polled again and again: the previous answer when it is
    at most ``READ_REUSE`` older than ``now`` and no job was added, removed or edited
    since; otherwise computed from the schedule arithmetic the previous call carried.
    Two threads at once each compute their own; either's serves the next call."""
    global _last_pass, _last_answer
    jobs = _jobs_fingerprint()
    if _last_answer is not None:
        at, fingerprint, late = _last_answer
        if fingerprint == jobs and at <= now <= at + READ_REUSE:
            return late
    fires = _last_pass.carried()
    late = late_jobs(now, fires)
    _last_pass, _last_answer = fires, (now, jobs, late)
    return late


def forget_reads() -> None:
    """Drop what ``late_jobs_now`` keeps (tests, which move the database under it)."""
    global _last_pass, _last_answer
    _last_pass, _last_answer = FireCache(), None


def _jobs_fingerprint() -> tuple:
    """(count, newest ``updated_at``) of the jobs: any add, delete or edit changes it."""
    found = Job.objects.aggregate(n=Count("id"), newest=Max("updated_at"))
    return (found["n"], found["newest"])


def _floor(cron: str, moment: datetime) -> datetime:
    """``moment`` down to its schedule's granularity: the next fire after it is the same."""
    if looks_like_recurrence(cron):
        return moment  # the recurrence engine's own granularity: not assumed
    if len(cron.split()) == 6:
        return moment.replace(microsecond=0)
    return moment.replace(second=0, microsecond=0)


def late_jobs(now: datetime, fires: FireCache | None = None) -> list[LateJob]:
    """Every enabled job that is late at ``now``, by due time (see the module docstring)."""
    fires = fires or FireCache()
    newest_start = (
        Run.objects.filter(~Q(status=RunStatus.SKIPPED), job=OuterRef("pk"))
        .filter(started_at__isnull=False)
        .order_by("-id")
        .values("started_at")[:1]
    )
    rows = (
        Job.objects.filter(enabled=True)
        .annotate(last_start=Subquery(newest_start))
        .values_list(*_COLUMNS)
    )
    late = []
    for job_id, name, cron, zone, effective, created, grace_s, last_start in rows.iterator(
        chunk_size=2000
    ):
        zone = zone or settings.TIME_ZONE
        found = _late(now, fires, cron, zone, effective or created, grace_s, last_start)
        if found is not None:
            due, grace = found
            late.append(LateJob(job_id, name, due, grace, _aware(last_start)))
    late.sort(key=lambda job: (job.due, job.job_id))
    return late


def _late(
    now, fires, cron, zone, effective, grace_s, last_start
) -> tuple[datetime, timedelta] | None:
    anchor = max(filter(None, (_aware(effective), _aware(last_start))))
    try:
        due = fires.after(cron, zone, anchor)
        if grace_s is not None:
            grace = timedelta(seconds=grace_s)
            return (due, grace) if now > due + grace else None
        if now <= due + MIN_GRACE:
            return None
        period = fires.after(cron, zone, due) - due
    except (ValueError, KeyError):  # a schedule that does not load: a failed registration
        return None
    grace = max(MIN_GRACE, period + PERIOD_MARGIN)
    return (due, grace) if now > due + grace else None


def _aware(moment: datetime | str | None) -> datetime | None:
    """A datetime from the database as aware UTC (a raw value annotation on SQLite is text)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
