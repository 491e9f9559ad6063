"""One alert per incident: a job's failures are counted into an ``Incident`` row.

``record(run)`` is called once for every run that reaches a final status
(``notify.run_finished``) and returns the Slack messages it calls for, which go
through the same outbox as every other notification:

* a failed run (``error``/``timeout``) opens the job's ``failing`` incident, or
  counts into the open one. When the count reaches the job's
  ``alert_after_failures`` (default 1) the incident is raised: one post,
  "failing since <first failure>, N failures", with the run's own message.
  Later failures post nothing, except a reminder with the count on the first
  failure at least ``alert_reminder_hours`` after the last post (0: never);
* an ``ok`` run closes the open incident; if it had been raised, one post:
  "recovered after N failures over <duration>". An incident closed before it
  was raised (fewer failures than the threshold) closes silently;
* ``skipped`` runs change nothing.

Times are the runs' own ``finished_at``, so the answer does not depend on
which process records it or when. A run older than the last one counted (two
overlapping runs finishing out of order) does not count twice or reopen.
Both posts go to the failure channel (the job's ``on_failure``, else
``notifications.defaultOnFailure``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet

from runner import slack
from runner.models import FINAL_RUN_STATUSES, Incident, IncidentKind, Job, Run, RunStatus

FAILED = (RunStatus.ERROR, RunStatus.TIMEOUT)


def open_incidents() -> QuerySet[Incident]:
    """Open incidents, newest first, with their jobs (for the admin dashboard)."""
    return Incident.objects.filter(closed_at__isnull=True).select_related("job")


def record(run: Run, channel: str, admin_url: str | None = None) -> list[tuple[str, str]]:
    """Count ``run`` (final status) into its job's incident; the ``(channel, text)`` posts due.

    ``channel`` is where failure alerts go ("" posts nothing but still records).
    """
    if run.status not in FINAL_RUN_STATUSES or run.status == RunStatus.SKIPPED:
        return []
    if run.status == RunStatus.OK and not _has_open_incident(run.job_id):
        return []  # the common case, in one plain read: nothing to close
    moment = run.finished_at or run.created_at
    for attempt in range(2):  # a concurrent insert of the open incident wins once
        try:
            with transaction.atomic():
                texts = _record(run, moment, admin_url)
            break
        except IntegrityError:
            if attempt:
                raise
    return [(channel, text) for text in texts] if channel else []


_OPEN_INCIDENT_SQL = (
    f"SELECT 1 FROM {Incident._meta.db_table} WHERE job_id = %s "
    f"AND kind = '{IncidentKind.FAILING.value}' AND closed_at IS NULL LIMIT 1"
)


def _has_open_incident(job_id: str) -> bool:
    """Whether the job has an open ``failing`` incident: one indexed read, no ORM, no
    transaction (on SQLite a transaction here would take the write lock for every run;
    issue 12). A success racing a failure that opens one is the same as the success
    finishing just before it."""
    with connection.cursor() as cursor:
        cursor.execute(_OPEN_INCIDENT_SQL, [job_id])
        return cursor.fetchone() is not None


def _record(run: Run, moment: datetime, admin_url: str | None) -> list[str]:
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
        return [recovery_text(job, incident)]
    if incident is None:
        incident = Incident.objects.create(
            job=job, kind=IncidentKind.FAILING, opened_at=moment, first_run=run
        )
    incident.failures += 1
    incident.last_run = run
    incident.last_run_seen = run.pk
    texts = []
    if incident.alerted_at is None:
        if incident.failures >= job.alert_after_failures:
            incident.alerted_at = moment
            texts.append(failing_text(job, run, incident, admin_url))
    elif job.alert_reminder_hours:
        last_post = incident.reminded_at or incident.alerted_at
        if moment - last_post >= timedelta(hours=job.alert_reminder_hours):
            incident.reminded_at = moment
            incident.reminders += 1
            texts.append(reminder_text(job, incident))
    incident.save()
    return texts


def failing_text(job: Job, run: Run, incident: Incident, admin_url: str | None) -> str:
    """The raise: the run's own message, then "failing since <time>, N failures"."""
    message = slack.format_run_message(
        job.id, job.name, run.status, run.duration_ms, run.error, admin_url
    )
    return f"{message}\n{_since(incident)}"


def reminder_text(job: Job, incident: Incident) -> str:
    """A reminder of an open incident with its count."""
    return (
        f":rotating_light: *{_escape(job.name)}* (`{_escape(job.id)}`) is still {_since(incident)}"
    )


def recovery_text(job: Job, incident: Incident) -> str:
    """The recovery: "recovered after N failures over <duration>"."""
    span = incident.closed_at - incident.opened_at
    n = incident.failures
    return (
        f":white_check_mark: *{_escape(job.name)}* (`{_escape(job.id)}`) recovered after "
        f"{n} failure{'s' if n != 1 else ''} over {_span(span)}"
    )


def _since(incident: Incident) -> str:
    n = incident.failures
    when = incident.opened_at.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"failing since {when}, {n} failure{'s' if n != 1 else ''}"


def _span(span: timedelta) -> str:
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
