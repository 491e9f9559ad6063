"""What a stop says while it waits for running runs: how many, how long, and each as it ends.

Without it a stop with running jobs is silent for up to the shutdown grace. The
runs are the ones the cluster's worker processes hold (``Run.worker`` is
``host:pid``); the database is asked again only every ``POLL_S``, and a database
that does not answer only makes the report quieter, never the stop slower.
"""

from __future__ import annotations

import logging
import socket

import psutil
from django.conf import settings
from django.db import DatabaseError

from runner.models import Run, RunStatus

logger = logging.getLogger(__name__)

# How often the stop looks for runs that ended, in seconds.
POLL_S = 0.5


def _worker_names(sentinel_pid: int) -> list[str]:
    try:
        children = psutil.Process(sentinel_pid).children()
    except psutil.Error:
        return []
    host = socket.gethostname()
    return [f"{host}:{child.pid}" for child in children]


class StopReport:
    """Logs "waiting up to N s for K running runs" at a stop, then each run as it ends."""

    def __init__(self, sentinel_pid: int) -> None:
        self.waiting: dict[int, str] = {}  # run id -> job id
        try:
            running = Run.objects.filter(
                status=RunStatus.RUNNING, worker__in=_worker_names(sentinel_pid)
            ).values_list("pk", "job_id")
            self.waiting = dict(running)
        except DatabaseError:
            return
        if self.waiting:
            grace_s = settings.RUNNER.shutdown_grace_ms / 1000
            count = len(self.waiting)
            logger.info(
                "waiting up to %g s for %d running run%s: %s",
                grace_s,
                count,
                "" if count == 1 else "s",
                ", ".join(f"#{pk} ({job})" for pk, job in sorted(self.waiting.items())),
            )

    def check(self) -> None:
        """Log each run that ended since the last check."""
        if not self.waiting:
            return
        try:
            ended = Run.objects.filter(pk__in=self.waiting).exclude(status=RunStatus.RUNNING)
            ended = list(ended.values_list("pk", "status"))
        except DatabaseError:
            return
        for pk, status in sorted(ended):
            logger.info("run %s of %s ended: %s", pk, self.waiting.pop(pk), status)
