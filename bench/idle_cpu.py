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
    return sum(per_process_cpu_s(root).values())


def per_process_cpu_s(root: psutil.Process) -> dict[str, float]:
    """CPU seconds (user + system) of each process of the tree, by a name saying its role."""
    found: dict[str, float] = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            name = "runscheduler" if process.pid == root.pid else _role(process)
        except psutil.Error:
            continue
        found[f"{name} {process.pid}"] = times.user + times.system
    return found


def _role(process: psutil.Process) -> str:
    """django-q2 names its processes (setproctitle) when it can; else the command line."""
    title = " ".join(process.cmdline())
    for role in ("sentinel", "pusher", "monitor", "worker", "guard"):
        if role in title.lower():
            return role
    return process.name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument(
        "--clock-only", action="store_true", help="runscheduler --no-workers (the loop alone)"
    )
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
            [sys.executable, "manage.py", "runscheduler", *(["--no-workers"] * args.clock_only)],
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
            before, began = per_process_cpu_s(root), time.monotonic()
            time.sleep(args.seconds)
            after, took = per_process_cpu_s(root), time.monotonic() - began
            by_process = {name: after[name] - before.get(name, 0.0) for name in after}
            used = sum(by_process.values())
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
    print("by process: " + ", ".join(f"{name} {s:.2f} s" for name, s in by_process.items()))
    path = write_results(
        "idle_cpu",
        {
            "settings": vars(args),
            "cpu_s": used,
            "seconds": took,
            "percent": percent,
            "by_process_s": by_process,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
