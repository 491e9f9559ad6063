"""Real ``manage.py runscheduler`` / ``runworkers`` processes against the test database.

Each daemon leads its own process group; everything it started (workers and the
scripts they run, which lead sessions of their own) is killed when the test ends.
Waits poll the database against a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
from django.conf import settings
from django.db import close_old_connections

from jeeves_site.database import database_url

T = TypeVar("T")

# Fast enough for tests, and within the configuration's minimums.
TEST_TIMINGS = {
    "JEEVES_RECONCILE_INTERVAL_MS": "200",
    "JEEVES_HEARTBEAT_INTERVAL_MS": "200",
    "JEEVES_LIVENESS_TIMEOUT_MS": "2000",
    "JEEVES_PENDING_REDISPATCH_MS": "3000",
    "JEEVES_SHUTDOWN_GRACE_MS": "1500",
    "JEEVES_KILL_GRACE_MS": "500",
    "JEEVES_MAX_CONCURRENCY": "2",
    "JEEVES_LOG_LEVEL": "debug",
}


def wait_for(what: str, probe: Callable[[], T], timeout: float = 15.0, every: float = 0.05) -> T:
    """Return ``probe()``'s first truthy value; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Daemons:
    """Starts daemons for one test and kills all of them, and their scripts, after it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.queue_name = f"t{uuid.uuid4().hex[:10]}"
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            **TEST_TIMINGS,
            "DATABASE_URL": database_url(),
            "JEEVES_DATA_DIR": str(workdir),
            "JEEVES_Q_NAME": self.queue_name,
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "test-only"),
        }
        self.env.pop("JEEVES_TEST_DATABASE_NAME", None)

    def start(self, command: str = "runscheduler", *args: str, **env: str) -> subprocess.Popen:
        """Start ``manage.py command args`` in a new process group with ``env`` added."""
        log = (self.workdir / f"{command}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), command, *args],
            env={**self.env, **env},
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = log.name
        self.processes.append(process)
        return process

    def logs(self) -> str:
        """Everything the daemons of this test wrote, for failure messages."""
        return "\n".join(
            f"--- {process.log_path}\n{Path(process.log_path).read_text(errors='replace')}"
            for process in self.processes
        )

    def signal_group(self, process: subprocess.Popen, number: int) -> None:
        """Send ``number`` to the daemon's whole process group, as systemd does."""
        os.killpg(process.pid, number)

    def exit_status(self, process: subprocess.Popen, timeout: float) -> int:
        """Wait for the daemon to exit; fail (with its log) if it does not in time."""
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon still running after {timeout} s\n{self.logs()}") from None

    def cleanup(self) -> None:
        """Kill every daemon, everything below it, and any script of this database."""
        doomed: list[psutil.Process] = []
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                doomed += psutil.Process(process.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        doomed += scripts_of_this_database()
        for process in doomed:
            with contextlib.suppress(psutil.Error):
                process.kill()
        deadline = time.monotonic() + 5
        while any(_running(p) for p in doomed) and time.monotonic() < deadline:
            time.sleep(0.02)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def _running(process: psutil.Process) -> bool:
    """Still running; a zombie nobody reaps (pid 1 here may not) counts as gone."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def scripts_of_this_database() -> list[psutil.Process]:
    """Live processes started as scripts by a runner on the test database."""
    url = database_url()
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if env.get("DATABASE_URL") == url and "JR_RUN_ID" in env:
                found.append(process)
    return found
