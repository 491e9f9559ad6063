"""Where finished runs are announced: the log now, Slack with the notifications work."""

from __future__ import annotations

import logging

from runner.models import Run

logger = logging.getLogger(__name__)


def run_finished(run: Run) -> None:
    """Announce a run that reached a final status. Never raises."""
    logger.info(
        "run %s of %s finished: %s%s",
        run.pk,
        run.job_id,
        run.status,
        f" ({run.error.splitlines()[0]})" if run.error else "",
    )
