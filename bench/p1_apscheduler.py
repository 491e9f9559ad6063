"""P1 peer: APScheduler 3.11 firing the probe script every second for each of N jobs.

Started by p1_fire_precision.py; runs until SIGTERM or ``--max-seconds``. Each job
is a cron trigger with ``second='*'`` whose function launches the probe with
``subprocess.Popen`` on a thread pool sized to the job count; everything else is
APScheduler's defaults (misfire grace 1 s, coalesce, one instance per job).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

SCRIPT_TIMEOUT_S = 10


def launch(script: str, job: str, out: str) -> None:
    """Start the probe for ``job`` and reap it."""
    child = subprocess.Popen([script, job, out], env=os.environ | {"LC_ALL": "C"})
    try:
        child.wait(SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=args.jobs)}, timezone="UTC"
    )
    for n in range(args.jobs):
        job = f"p1-{n:03d}"
        trigger = CronTrigger(second="*", timezone="UTC")
        scheduler.add_job(launch, trigger, args=[args.script, job, args.out], id=job)
    scheduler.start()
    stop.wait(args.max_seconds)
    scheduler.shutdown(wait=True)


if __name__ == "__main__":
    main()
