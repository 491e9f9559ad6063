"""``trigger_job ID``: run a job now, in this process, and print how it ended."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from runner import notify
from runner.execution.executor import cancel_on_signals, execute_run
from runner.execution.scripts import Cancellation
from runner.jobs import UnknownJobs, get_jobs
from runner.management.base import RunnerCommand
from runner.models import Run, RunStatus
from runner.terminal import neutralise

# Slack posts leave from a background thread; give them time before this process exits
# (a post times out after a few seconds).
NOTIFY_FLUSH_S = 15.0


class Command(RunnerCommand):
    help = (
        "Run a job now through the same path as the scheduler (a manual run) and print "
        "its status, exit code, duration and output tails. Exits 0 only when it ended ok. "
        "Ctrl-C ends the script and records the run as interrupted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id")

    def handle(self, *args: Any, job_id: str, **options: Any) -> None:
        try:
            [job] = get_jobs([job_id])
        except UnknownJobs as exc:
            raise CommandError(str(exc)) from None
        cancel = Cancellation()
        # Installed before "started" is printed, so a Ctrl-C from then on is recorded.
        with cancel_on_signals(cancel):
            run = Run.create_manual(job, timezone.now())
            self.stdout.write(f"run #{run.pk} of {job.id} started")
            self.stdout.flush()
            finished = execute_run(run.pk, cancel=cancel)
            notify.flush(NOTIFY_FLUSH_S)
        if finished is None:  # removed while it ran
            raise CommandError(f"run #{run.pk} of {job.id} disappeared before it finished")
        self.stdout.write(describe_run(finished))
        if finished.status != RunStatus.OK:
            raise CommandError(f"run #{finished.pk} of {job.id} ended {finished.status}")


def describe_run(run: Run) -> str:
    """A finished run as the operator reads it: the verdict line, its error, then the tails."""
    exit_code = "none" if run.exit_code is None else run.exit_code
    lines = [f"status: {run.status}, exit code: {exit_code}, duration: {run.duration_ms} ms"]
    if run.error:
        lines.append(f"error: {run.error}")
    cut = ", only the last lines kept" if run.output_truncated else ""
    for name, text, size in (
        ("stdout", run.stdout, run.stdout_bytes),
        ("stderr", run.stderr, run.stderr_bytes),
    ):
        lines.append(f"--- {name} ({size} bytes{cut if text else ''}) ---")
        if text:
            lines.append(text)
    # Output is the script's, shown on the operator's terminal: no escape sequence runs.
    return neutralise("\n".join(lines))
