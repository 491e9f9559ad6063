"""runworkers: django-q2 workers for another host, safe under a process-group SIGTERM."""

from __future__ import annotations

import sys

from runner.management.base import ProjectCommand
from runner.workers import WorkerHost


class Command(ProjectCommand):
    help = (
        "Run maxConcurrency django-q2 workers for runs dispatched by runscheduler "
        "--no-workers elsewhere. Unlike qcluster it stops cleanly on a SIGTERM to its "
        "whole process group, gives running jobs the shutdown grace, and finishes the "
        "runs of its own dead workers."
    )

    def handle(self, *args, **options) -> None:
        status = WorkerHost().run()
        if status:
            sys.exit(status)
