"""Scale, idle: the CPU runscheduler and its workers use with many enabled jobs that rarely fire.

    .venv/bin/python bench/idle_cpu.py [--jobs 5000] [--seconds 60] [--db sqlite|postgres://...]

Creates ``--jobs`` enabled jobs on a scratch database with mixed schedules (daily,
hourly, weekly and monthly crons at spread-out minutes, so a few fire now and then),
starts ``manage.py runscheduler``, lets it settle for ``--warmup`` seconds, then sums
the CPU time of its whole process tree (scheduler, sentinel, pusher, monitor, worker)
over ``--seconds``. Goal (issue 12): below 3 % of one core.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import ROOT, db_argument, print_table, scratch_database, write_results


def schedules(count: int) -> list[str]:
    """Mixed crons: daily, hourly, weekly, monthly, at spread-out minutes and hours."""
    pick = random.Random(12)
    kinds = (
        lambda: f"{pick.randrange(60)} {pick.randrange(24)} * * *",
        lambda: f"{pick.randrange(60)} * * * *",
        lambda: f"{pick.randrange(60)} {pick.randrange(24)} * * {pick.randrange(7)}",
        lambda: f"{pick.randrange(60)} {pick.randrange(24)} {pick.randrange(1, 29)} * *",
    )
    return [kinds[n % len(kinds)]() for n in range(count)]


def tree_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=20)
    db_argument(parser)
    args = parser.parse_args()
    with scratch_database(args.db, "idle") as scratch:
        from runner.models import Job

        Job.objects.bulk_create(
            Job(id=f"idle-{n:05d}", name=f"idle {n}", schedule=cron, script="true")
            for n, cron in enumerate(schedules(args.jobs))
        )
        env = {k: v for k, v in os.environ.items() if k != "JEEVES_CONFIG"} | scratch.env
        child = subprocess.Popen(
            [sys.executable, "manage.py", "runscheduler"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            root = psutil.Process(child.pid)
            time.sleep(args.warmup)
            load = os.getloadavg()
            before, began = tree_cpu_s(root), time.monotonic()
            time.sleep(args.seconds)
            used, took = tree_cpu_s(root) - before, time.monotonic() - began
            processes = 1 + len(root.children(recursive=True))
        finally:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(60)
    percent = used / took * 100
    print_table(
        ["jobs", "db", "seconds", "processes", "cpu s", "% of one core", "load"],
        [[args.jobs, args.db.split("@")[-1], round(took), processes, f"{used:.2f}",
          f"{percent:.2f}", f"{load[0]:.1f}"]],
    )  # fmt: skip
    path = write_results(
        "idle_cpu", {"settings": vars(args), "cpu_s": used, "seconds": took, "percent": percent}
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
