"""One alert per incident: a job's trouble is counted into an ``Incident`` row.

Three kinds share one life: raised once (one post), an optional reminder with the
count every ``Job.alert_reminder_hours`` (0: never), and one recovery post. This
module keeps the ``failing`` kind, counted as runs finish; ``runner.watch`` keeps
``late`` and ``slow``, found by the scheduler's periodic check, with the texts and
the ``Alert`` shape from here.

``record(run)`` is called once for every run that reaches a final status
(``notify.run_finished``) and returns the alerts it calls for, which go through
the same background outbox as every other notification (Slack and the webhook):

* a failed run (``error``/``timeout``) opens the job's ``failing`` incident, or
  counts into the open one. When the count reaches the job's
  ``alert_after_failures`` (default 1) the incident is raised: one post,
  "failing since <first failure>, N failures", with the run's own message.
  Later failures post nothing, except a reminder with the count on the first
  failure at least ``alert_reminder_hours`` after the last post (0: never);
* a failed run that is retried (``runner.retries``) counts nothing: only the
  last attempt of a chain counts, once (a retry skipped by overlap counts then);
* an ``ok`` run closes the open incident; if it had been raised, one post:
  "recovered after N failures over <duration>". An incident closed before it
  was raised (fewer failures than the threshold) closes silently;
* any finished run closes the ``slow`` incident it was the subject of;
* other ``skipped`` runs change nothing.

Times are the runs' own ``finished_at``, so the answer does not depend on
which process records it or when. A run older than the last one counted (two
overlapping runs finishing out of order) does not count twice or reopen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from runner import slack
from runner.models import FINAL_RUN_STATUSES, Incident, IncidentKind, Job, Run, RunStatus

FAILED = (RunStatus.ERROR, RunStatus.TIMEOUT)


class Event:
    """What an alert says about its incident (the webhook's ``event``)."""

    RAISED = "incident.raised"
    REMINDER = "incident.reminder"
    RECOVERED = "incident.recovered"


@dataclass(frozen=True)
class Alert:
    """One post about one incident: ``text`` for Slack, the rest for the webhook."""

    event: str
    incident: Incident
    job: Job
    text: str
    run_id: int | None = None


def open_incidents() -> QuerySet[Incident]:
    """Open incidents, newest first, with their jobs (for the admin dashboard)."""
    return Incident.objects.filter(closed_at__isnull=True).select_related("job")


def record(run: Run, admin_url: str | None = None, retried: bool = False) -> list[Alert]:
    """Count ``run`` (final status) into its job's incidents; the alerts due.

    ``retried``: a retry of this failed run is recorded, so it does not count.
    """
    if run.status not in FINAL_RUN_STATUSES:
        return []
    if run.status == RunStatus.OK and not _has_open_incident(run):
        return []  # the common case, in one plain read: nothing to close
    moment = run.finished_at or run.created_at
    return with_retry_on_conflict(lambda: _record(run, moment, admin_url, retried))


def with_retry_on_conflict(work: Callable[[], list[Alert]]) -> list[Alert]:
    """``work`` in a transaction; once more if a concurrent insert of the same open
    incident won (the one-open-per-job-and-kind constraint)."""
    for attempt in range(2):
        try:
            with transaction.atomic():
                return work()
        except IntegrityError:
            if attempt:
                raise
    return []  # not reached


_OPEN_INCIDENT_SQL = (
    f"SELECT 1 FROM {Incident._meta.db_table} WHERE job_id = %s AND closed_at IS NULL LIMIT 1"
)


def _has_open_incident(run: Run) -> bool:
    """Whether the run's job has an open incident of any kind: as ``Run.finish`` read it
    in its own statement, else one indexed read, no ORM, no transaction (on SQLite a
    transaction here would take the write lock for every run; issue 12). Without one,
    an ok run has nothing to close (``_close_slow``, ``_count_failing``). A success
    racing a failure that opens one is the same as the success finishing just before it."""
    if run.job_had_open_incident is not None:
        return run.job_had_open_incident
    with connection.cursor() as cursor:
        cursor.execute(_OPEN_INCIDENT_SQL, [run.job_id])
        return cursor.fetchone() is not None


def _record(run: Run, moment: datetime, admin_url: str | None, retried: bool) -> list[Alert]:
    alerts = _close_slow(run, moment)
    counts = run.status in FAILED or (run.status == RunStatus.SKIPPED and run.retry_of_id)
    if run.status == RunStatus.OK or (counts and not retried):
        alerts += _count_failing(run, moment, admin_url)
    return alerts


def _count_failing(run: Run, moment: datetime, admin_url: str | None) -> list[Alert]:
    job: Job = run.job
    incident = (
        Incident.objects.select_for_update()
        .filter(job_id=job.pk, kind=IncidentKind.FAILING, closed_at__isnull=True)
        .first()
    )
    if incident is not None and run.pk <= incident.last_run_seen:
        return []
    if run.status == RunStatus.OK:
        if incident is None:
            return []
        incident.closed_at = moment
        incident.last_run_seen = run.pk
        incident.save(update_fields=["closed_at", "last_run_seen"])
        if incident.alerted_at is None:
            return []
        return [Alert(Event.RECOVERED, incident, job, recovery_text(job, incident), run.pk)]
    if incident is None:
        incident = Incident.objects.create(
            job=job, kind=IncidentKind.FAILING, opened_at=moment, first_run=run
        )
    incident.failures += 1
    incident.last_run = run
    incident.last_run_seen = run.pk
    alerts = []
    if incident.alerted_at is None:
        if incident.failures >= job.alert_after_failures:
            incident.alerted_at = moment
            text = failing_text(job, run, incident, admin_url)
            alerts.append(Alert(Event.RAISED, incident, job, text, run.pk))
    elif reminder_due(job, incident, moment):
        incident.reminded_at = moment
        incident.reminders += 1
        alerts.append(Alert(Event.REMINDER, incident, job, reminder_text(job, incident), run.pk))
    incident.save()
    return alerts


def reminder_due(job: Job, incident: Incident, moment: datetime) -> bool:
    """Whether a reminder of the raised ``incident`` is due at ``moment``."""
    if not job.alert_reminder_hours or incident.alerted_at is None:
        return False
    last_post = incident.reminded_at or incident.alerted_at
    return moment - last_post >= timedelta(hours=job.alert_reminder_hours)


def _close_slow(run: Run, moment: datetime) -> list[Alert]:
    """Close the ``slow`` incident whose run this is: it ended (``runner.watch`` raised it)."""
    incident = (
        Incident.objects.select_for_update()
        .filter(job_id=run.job_id, kind=IncidentKind.SLOW, closed_at__isnull=True, last_run=run)
        .first()
    )
    if incident is None:
        return []
    incident.closed_at = moment
    incident.save(update_fields=["closed_at"])
    text = slow_recovery_text(run.job, incident, run.status)
    return [Alert(Event.RECOVERED, incident, run.job, text, run.pk)]


def failing_text(job: Job, run: Run, incident: Incident, admin_url: str | None) -> str:
    """The raise: the run's own message, then "failing since <time>, N failures"."""
    message = slack.format_run_message(
        job.id, job.name, run.status, run.duration_ms, run.error, admin_url
    )
    return f"{message}\n{_since(incident)}"


def reminder_text(job: Job, incident: Incident) -> str:
    """A reminder of an open incident with its count (any kind)."""
    return f":rotating_light: {_who(job)} is still {_since(incident)}"


def recovery_text(job: Job, incident: Incident) -> str:
    """The recovery: "recovered after N failures (missed fires) over <duration>"."""
    span = incident.closed_at - incident.opened_at
    over = span_text(span)
    return f":white_check_mark: {_who(job)} recovered after {_count(incident)} over {over}"


def late_text(job: Job, incident: Incident) -> str:
    """A ``late`` raise: "did not run: late since <due>, N missed fires (grace ...)"."""
    return f":alarm_clock: {_who(job)} did not run: {_since(incident)} ({incident.detail})"


def slow_text(job: Job, incident: Incident) -> str:
    """A ``slow`` raise: the run and how far past its usual duration it is."""
    return f":snail: {_who(job)} is slow: {incident.detail}"


def slow_recovery_text(job: Job, incident: Incident, status: str) -> str:
    """A ``slow`` recovery: the run ended, with its status and how long it ran."""
    span = incident.closed_at - incident.opened_at
    return (
        f":white_check_mark: {_who(job)} recovered: run #{incident.last_run_id} ended "
        f"({status}) {span_text(span)} after it was found slow"
    )


_WORDS = {
    IncidentKind.FAILING: ("failing", "failure"),
    IncidentKind.LATE: ("late", "missed fire"),
    IncidentKind.SLOW: ("slow", "slow run"),
}


def _since(incident: Incident) -> str:
    state, _ = _WORDS[incident.kind]
    when = incident.opened_at.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{state} since {when}, {_count(incident)}"


def _count(incident: Incident) -> str:
    _, noun = _WORDS[incident.kind]
    n = incident.failures
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _who(job: Job) -> str:
    return f"*{_escape(job.name)}* (`{_escape(job.id)}`)"


def span_text(span: timedelta) -> str:
    """A duration for people, to the second: ``3 h``, ``4 min 5 s``, ``12 s``."""
    seconds = max(0, int(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
