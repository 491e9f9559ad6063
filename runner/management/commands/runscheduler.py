"""runscheduler: the daemon. Schedules, dispatches, maintains; logs to stderr."""

from __future__ import annotations

import sys

from runner.daemon import Daemon
from runner.management.base import ProjectCommand


class Command(ProjectCommand):
    help = (
        "Run the scheduler: fire jobs on time, start django-q2 workers in-process "
        "(as many as maxConcurrency), check liveness and do maintenance. "
        "Stops cleanly on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Run the clock only; workers run elsewhere (runworkers or qcluster).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Plan, do one cycle (fires due now, liveness, maintenance) and exit; "
            "starts no workers.",
        )

    def handle(self, *args, no_workers: bool, once: bool, **options) -> None:
        status = Daemon(workers=not no_workers).run(once=once)
        if status:
            sys.exit(status)
