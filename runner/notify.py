"""Announce finished runs: a log line always, Slack messages where channels are set.

Messages are built where the run finished and handed to one background thread that
posts them in order (``Outbox``). A worker therefore never waits on Slack: a slow
Slack costs that thread up to ``notifications.timeout_s`` per message, not a
concurrency slot that other jobs' fires are waiting for. Whatever Slack answers is
logged by ``runner.slack`` and never touches the run.

Routing: ``error`` and ``timeout`` runs go to the job's ``on_failure`` channel (else
``notifications.defaultOnFailure``) once per incident (``runner.incidents``: when the job
starts failing, optional reminders, and its recovery), ``ok`` runs to ``on_success`` (else
``defaultOnSuccess``), and an ``ok`` run's stdout to its ``output_channel``. Skipped
runs (an overlap skip) are logged only: they repeat on every fire while a run is
stuck, and that stuck run is announced itself when it ends.

Every incident alert (failing, late, slow) also goes, as JSON, to the job's
``webhook_url`` (else ``notifications.webhookUrl``) through the same outbox
(``runner.webhook``). A webhook post that may succeed later (timeout, connection
refused, 429, 5xx) is tried again after ``WEBHOOK_BACKOFF_S``, doubling, at most
``WEBHOOK_ATTEMPTS`` times in all; meanwhile the thread posts what else is due.
A Slack post is tried once (``runner.slack`` never waits out a rate limit).

A failed run is first offered to ``runner.retries``: when a retry is recorded,
the failure does not count into the job's incident (the last attempt does). Before
anything else, a run's end hands its job's next waiting catch-up run to the workers
(``runner.catchup``), so the catch-up goes on without waiting for Slack.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from jeeves_site.secret_urls import redact_url
from runner import catchup, incidents, retries, slack, tokens, webhook
from runner.incidents import Alert
from runner.models import Job, Run, RunStatus

logger = logging.getLogger(__name__)

FAILED_STATUSES = frozenset({RunStatus.ERROR, RunStatus.TIMEOUT})
# Messages waiting for the outbox thread; past this, new ones are dropped and logged
# rather than growing without bound while Slack is down.
OUTBOX_LIMIT = 500
# A webhook post that may succeed later is tried this often in all, this long apart
# at first (seconds, doubling).
WEBHOOK_ATTEMPTS = 4
WEBHOOK_BACKOFF_S = 1.0


def run_finished(run: Run) -> None:
    """Announce a run that reached a final status (retrying it first if its job says
    so; before that, dispatching its job's next catch-up run, ``runner.catchup``).
    Never raises, never waits on Slack."""
    # A line per run at INFO was a measurable share of a busy worker's CPU (issue 12):
    # runs that end ok say so at DEBUG, the others at INFO.
    logger.log(
        logging.DEBUG if run.status == RunStatus.OK else logging.INFO,
        "run %s of %s finished: %s%s",
        run.pk,
        run.job_id,
        run.status,
        f" ({run.error_line})" if run.error_line else "",
    )
    try:
        catchup.wake_next(run, timezone.now())
    except Exception:  # the liveness check's re-dispatch picks the next one up
        logger.exception("could not dispatch the catch-up run after run %s", run.pk)
    retried = False
    try:
        retried = retries.schedule_retry(run)
    except Exception:  # a retry that could not be recorded leaves the failure final
        logger.exception("could not record a retry of run %s", run.pk)
    try:
        send_alerts(incidents.record(run, run_admin_url(run), retried=retried))
        _send(run_messages(run), f"run {run.pk} of {run.job_id}")
    except Exception:  # a notification must never break the run that triggered it
        logger.exception("could not announce run %s in Slack", run.pk)


def send_alerts(alerts: Iterable[Alert]) -> None:
    """Queue each incident alert for the job's failure channel and its webhook."""
    for alert in alerts:
        what = f"the {alert.incident.kind} incident of {alert.job.pk}"
        channel = status_channel(alert.job, RunStatus.ERROR)
        if channel:
            _send([(channel, alert.text)], what)
        url = alert.job.webhook_url or settings.RUNNER.notifications.webhook_url
        if url:
            _queue(_WebhookPost(url, webhook_body(alert), what), what)


def webhook_body(alert: Alert) -> dict[str, Any]:
    """The JSON an alert is posted as (README, "Webhook")."""
    incident = alert.incident
    return {
        "event": alert.event,
        "kind": incident.kind,
        "text": alert.text,
        "job": {"id": alert.job.pk, "name": alert.job.name},
        "incident": {
            "id": incident.pk,
            "openedAt": _iso(incident.opened_at),
            "closedAt": _iso(incident.closed_at),
            "count": incident.failures,
            "reminders": incident.reminders,
            "detail": incident.detail,
        },
        "runId": alert.run_id,
    }


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def report_failed_registrations(failures: Iterable[tuple[str, str]]) -> None:
    """Tell the default failure channel which jobs' schedules failed to load at start-up.

    ``failures`` holds ``(job_id, error)`` pairs; nothing is sent when it is empty.
    Never raises, never waits on Slack.
    """
    failures = list(failures)
    if not failures:
        return
    for job_id, error in failures:
        logger.warning("job %s could not be scheduled: %s", job_id, error)
    channel = settings.RUNNER.notifications.default_on_failure
    if channel:
        _send([(channel, registration_report(failures))], "the start-up report")


def run_messages(run: Run) -> list[tuple[str, str]]:
    """The ``(channel, text)`` Slack messages a finished run calls for besides its
    incident's alerts (``runner.incidents``), maybe none."""
    job: Job = run.job
    messages = []
    channel = status_channel(job, run.status)
    # A failure is announced once per incident (runner.incidents), not per run.
    if channel and run.status not in FAILED_STATUSES:
        text = slack.format_run_message(
            job.id, job.name, run.status, run.duration_ms, run.error, run_admin_url(run)
        )
        messages.append((channel, text))
    if job.output_channel and run.status == RunStatus.OK and run.stdout.strip():
        messages.append((job.output_channel, slack.trim_for_slack(run.stdout)))
    return messages


def status_channel(job: Job, status: str) -> str:
    """Where a run with ``status`` is announced: the job's channel, else the default."""
    notifications = settings.RUNNER.notifications
    if status in FAILED_STATUSES:
        return job.on_failure or notifications.default_on_failure
    if status == RunStatus.OK:
        return job.on_success or notifications.default_on_success
    return ""


def run_admin_url(run: Run) -> str | None:
    """The run's page in the admin under ``baseUrl``; None when no base URL is set.

    A password in ``baseUrl`` is left out: the link is posted where others read it.
    """
    base_url = settings.RUNNER.base_url
    if not base_url:
        return None
    return redact_url(base_url, mask=None).rstrip("/") + reverse(
        "admin:runner_run_change", args=[run.pk]
    )


def registration_report(failures: list[tuple[str, str]]) -> str:
    """The start-up message listing jobs whose schedule failed to load, and why."""
    count = len(failures)
    lines = [f":warning: {count} job{'s' if count != 1 else ''} could not be scheduled:"]
    for job_id, error in failures:
        first_line = error.strip().splitlines()[0] if error.strip() else "no reason given"
        lines.append(f"• `{_escape(job_id)}`: {_escape(first_line)}")
    return slack.trim_for_slack("\n".join(lines))


def flush(timeout: float = 10.0) -> bool:
    """Wait until every queued Slack message has been tried; False if ``timeout`` passed.

    For a graceful stop (and tests): queued messages are lost when the process exits.
    """
    return _outbox.flush(timeout)


def _send(messages: list[tuple[str, str]], what: str) -> None:
    if not messages:
        return
    config = _slack_config(what)
    if config is None:
        return
    for channel, text in messages:
        _queue(_Post(config, channel, text), what)


def _queue(post: _Post | _WebhookPost, what: str) -> None:
    if not _outbox.put(post):
        logger.warning(
            "message to %s about %s dropped: %d messages are already waiting",
            post.destination,
            what,
            OUTBOX_LIMIT,
        )


def _slack_config(what: str) -> slack.SlackConfig | None:
    notifications = settings.RUNNER.notifications
    try:
        token = tokens.slack_token()
    except tokens.TokenUnavailable as exc:
        logger.warning("Slack notification about %s not sent: %s", what, exc)
        return None
    if token is None:
        logger.warning(
            "Slack notification about %s not sent: no Slack token is configured (set %s)",
            what,
            tokens.SLACK_TOKEN_SETTING,
        )
        return None
    return slack.SlackConfig(token, notifications.slack_api_url, notifications.timeout_s)


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class _Post:
    """A Slack message; tried once."""

    config: slack.SlackConfig
    channel: str
    text: str
    not_before: float = 0.0  # monotonic

    @property
    def destination(self) -> str:
        return f"Slack channel {self.channel}"

    def send(self) -> _Post | None:
        slack.post_message(self.config, self.channel, self.text)
        return None


@dataclass(frozen=True, repr=False)
class _WebhookPost:
    """An alert for the webhook; returns its next attempt when this one may be retried."""

    url: str
    body: dict[str, Any]
    what: str
    attempt: int = 1
    not_before: float = 0.0  # monotonic

    @property
    def destination(self) -> str:
        return f"webhook {webhook.safe_url(self.url)}"

    def send(self) -> _WebhookPost | None:
        timeout = settings.RUNNER.notifications.timeout_s
        if webhook.post_json(self.url, self.body, timeout) != webhook.Sent.RETRY:
            return None
        if self.attempt >= WEBHOOK_ATTEMPTS:
            logger.warning(
                "%s about %s given up after %d attempts", self.destination, self.what, self.attempt
            )
            return None
        wait = WEBHOOK_BACKOFF_S * 2 ** (self.attempt - 1)
        return replace(self, attempt=self.attempt + 1, not_before=time.monotonic() + wait)


class Outbox:
    """Posts messages from one daemon thread, in order, so callers never wait.

    A post that asks to be tried again waits for its ``not_before`` without holding
    up the posts behind it.
    """

    def __init__(self, limit: int = OUTBOX_LIMIT) -> None:
        self.limit = limit
        self._changed = threading.Condition()
        self._posts: list[_Post | _WebhookPost] = []
        self._sending = False
        self._thread: threading.Thread | None = None

    def put(self, post: _Post | _WebhookPost) -> bool:
        """Queue ``post``; False when the queue is full."""
        with self._changed:
            if len(self._posts) >= self.limit:
                return False
            self._posts.append(post)
            self._ensure_thread()
            self._changed.notify_all()
        return True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="slack-outbox")
            self._thread.daemon = True
            self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty and nothing is being sent."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._posts and not self._sending, timeout)

    def _serve(self) -> None:
        while True:
            with self._changed:
                post = self._next_ready()
                while post is None:
                    self._changed.wait(self._wait_s())
                    post = self._next_ready()
                self._sending = True
            again = None
            try:
                again = post.send()
            except Exception:  # send never raises; keep the thread alive regardless
                logger.exception("posting to %s failed", post.destination)
            finally:
                with self._changed:
                    if again is not None:
                        self._posts.append(again)
                    self._sending = False
                    self._changed.notify_all()

    def _next_ready(self) -> _Post | _WebhookPost | None:
        now = time.monotonic()
        for index, post in enumerate(self._posts):
            if post.not_before <= now:
                return self._posts.pop(index)
        return None

    def _wait_s(self) -> float | None:
        if not self._posts:
            return None
        return max(0.0, min(post.not_before for post in self._posts) - time.monotonic())


_outbox = Outbox()


def _new_outbox_after_fork() -> None:
    # A forked worker inherits the parent's queue but not its thread (nor, perhaps, a
    # free lock); it starts empty so no message is sent twice.
    global _outbox
    _outbox = Outbox()


os.register_at_fork(after_in_child=_new_outbox_after_fork)
