"""``runworkers``: a worker-only host for runs dispatched by a scheduler elsewhere.

The same cluster as ``runscheduler`` starts in-process, so a SIGTERM to the
process group stops it cleanly (stock ``qcluster`` hangs), running jobs get the
shutdown grace, and runs whose worker process died on this host are finished
at once, with whatever their scripts left behind ended.
"""

from __future__ import annotations

import logging
import signal
import threading

from django.db import close_old_connections, connections
from django.utils import timezone

from runner import cluster as runner_cluster
from runner.execution.inline_files import prepare_worker_host
from runner.liveness import Liveness, check_interval

logger = logging.getLogger(__name__)


class WorkerHost:
    """Runs the workers until told to stop."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.liveness = Liveness()
        self.cluster: runner_cluster.RunnerCluster | None = None

    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        """Signal handler: only sets a flag."""
        self.stopping.set()

    def run(self) -> int:
        """Start the workers, watch them until a stop signal; return the exit status."""
        for number in runner_cluster.STOP_SIGNALS:
            signal.signal(number, self.request_stop)
        try:
            prepare_worker_host()
            self.cluster = runner_cluster.start_cluster(self.request_stop)
            logger.info("runworkers started")
            while not self.stopping.wait(check_interval().total_seconds()):
                if not runner_cluster.sentinel_alive(self.cluster):
                    logger.critical("the worker cluster died; runworkers exits")
                    return 1
                close_old_connections()
                self._reap()
            return 0
        finally:
            clean = runner_cluster.stop_cluster(self.cluster)
            if self.cluster is not None:  # a worker frozen through the stop was killed
                self._reap(killed_at_stop=not clean)
            connections.close_all()
            logger.info("runworkers stopped")

    def _reap(self, killed_at_stop: bool = False) -> None:
        """Finish the runs of this host's dead workers (``Liveness.reap_dead_local``)."""
        try:
            self.liveness.reap_dead_local(timezone.now(), killed_at_stop)
        except Exception:
            logger.exception("finishing the runs of this host's dead workers failed")
