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
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from runner import incidents, slack, tokens
from runner.models import Job, Run, RunStatus

logger = logging.getLogger(__name__)

FAILED_STATUSES = frozenset({RunStatus.ERROR, RunStatus.TIMEOUT})
# Messages waiting for the outbox thread; past this, new ones are dropped and logged
# rather than growing without bound while Slack is down.
OUTBOX_LIMIT = 500


def run_finished(run: Run) -> None:
    """Announce a run that reached a final status. Never raises, never waits on Slack."""
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
        alerts = incidents.record(run, status_channel(run.job, RunStatus.ERROR), run_admin_url(run))
        _send(alerts + run_messages(run), f"run {run.pk} of {run.job_id}")
    except Exception:  # a notification must never break the run that triggered it
        logger.exception("could not announce run %s in Slack", run.pk)


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
    """The run's page in the admin under ``baseUrl``; None when no base URL is set."""
    base_url = settings.RUNNER.base_url
    if not base_url:
        return None
    return base_url.rstrip("/") + reverse("admin:runner_run_change", args=[run.pk])


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
        if not _outbox.put(_Post(config, channel, text)):
            logger.warning(
                "Slack message to %s about %s dropped: %d messages are already waiting",
                channel,
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
    config: slack.SlackConfig
    channel: str
    text: str


class Outbox:
    """Posts Slack messages from one daemon thread, in order, so callers never wait."""

    def __init__(self, limit: int = OUTBOX_LIMIT) -> None:
        self.limit = limit
        self._changed = threading.Condition()
        self._posts: deque[_Post] = deque()
        self._sending = False
        self._thread: threading.Thread | None = None

    def put(self, post: _Post) -> bool:
        """Queue ``post``; False when the queue is full."""
        with self._changed:
            if len(self._posts) >= self.limit:
                return False
            self._posts.append(post)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="slack-outbox")
                self._thread.daemon = True
                self._thread.start()
            self._changed.notify_all()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty and nothing is being sent."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._posts and not self._sending, timeout)

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._posts))
                post = self._posts.popleft()
                self._sending = True
            try:
                slack.post_message(post.config, post.channel, post.text)
            except Exception:  # post_message never raises; keep the thread alive regardless
                logger.exception("posting to Slack channel %s failed", post.channel)
            finally:
                with self._changed:
                    self._sending = False
                    self._changed.notify_all()


_outbox = Outbox()


def _new_outbox_after_fork() -> None:
    # A forked worker inherits the parent's queue but not its thread (nor, perhaps, a
    # free lock); it starts empty so no message is sent twice.
    global _outbox
    _outbox = Outbox()


os.register_at_fork(after_in_child=_new_outbox_after_fork)
