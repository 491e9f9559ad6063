"""P1, the scheduler's own share: CPU per fire of ``Scheduler.fire_due`` in one process.

    .venv/bin/python bench/p1_scheduler_loop.py                       # 100 jobs, 60 simulated s
    .venv/bin/python bench/p1_scheduler_loop.py --jobs 100 --seconds 60 --zone Europe/Berlin
    .venv/bin/python bench/p1_scheduler_loop.py --profile             # and where the time goes

The loop of ``runscheduler`` without its neighbours: ``--jobs`` jobs on an every-second
6-field cron in a scratch database, a ``Scheduler`` started at a fixed instant, then
``fire_due`` called once per simulated second for ``--seconds`` seconds (the wall clock
is a parameter, so nothing sleeps). Dispatch is a no-op (the worker's side is
``p1_fire_precision.py``'s), so the figure is what recording and planning fires costs
the scheduler process: CPU seconds (``time.process_time``) per fire. With
``--profile`` cProfile's totals are split into kinds (cron/plans, ORM, driver).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import db_argument, print_table, scratch_database, write_results

START = datetime(2026, 6, 1, tzinfo=UTC)
# (part, the functions whose cumulative time it is); the rest is the loop itself.
PARTS = (
    ("plans (next fire of a job)", (("runner/schedule.py", "next_fire_after"),
                                    ("runner/schedule.py", "next_after"))),
    ("recording (one INSERT a batch)", (("runner/models.py", "create_scheduled_many"),)),
    ("transaction (atomic)", (("django/db/transaction.py", "__enter__"),
                              ("django/db/transaction.py", "__exit__"))),
)  # fmt: skip


def breakdown(profile: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds per part, and the loop's own rest, from cProfile's totals."""
    stats = pstats.Stats(profile)
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(own for (_, _, own, _, _) in table.values())
    parts: dict[str, float] = {}
    for part, functions in PARTS:
        parts[part] = sum(
            cumulative
            for (filename, _, name), (_, _, _, cumulative, _) in table.items()
            if any(filename.endswith(path) and name == wanted for path, wanted in functions)
        )
    parts["the loop's rest"] = total - sum(parts.values())
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--zone", default="UTC", help="the jobs' time zone")
    parser.add_argument("--profile", action="store_true")
    db_argument(parser)
    args = parser.parse_args()
    with scratch_database(args.db, "sched_loop"):
        from runner.models import Job, Run
        from runner.scheduler import Scheduler

        Job.objects.bulk_create(
            Job(id=f"loop-{n:04d}", name=f"loop {n}", schedule="* * * * * *", script="true",
                timezone=args.zone)
            for n in range(args.jobs)
        )  # fmt: skip
        Job.objects.update(created_at=START, schedule_effective_at=START)
        scheduler = Scheduler(dispatcher=lambda ids: len(list(ids)), lead=timedelta(0))
        scheduler.start(START)
        profile = cProfile.Profile() if args.profile else None
        load = os.getloadavg()
        began_cpu, began = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        for second in range(1, args.seconds + 1):
            scheduler.fire_due(START + timedelta(seconds=second))
        if profile:
            profile.disable()
        cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
        fires = Run.objects.count()
        row = {
            "jobs": args.jobs,
            "zone": args.zone,
            "fires": fires,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "cpu_ms_per_fire": round(1000 * cpu / max(fires, 1), 3),
            "load": [round(x, 2) for x in (*load, *os.getloadavg())],
        }
        print_table(list(row), [list(row.values())])
        if profile:
            shares = breakdown(profile)
            total = sum(shares.values()) or 1.0
            print("\nwhere the time goes (cProfile, with its overhead):")
            for kind, seconds in sorted(shares.items(), key=lambda item: -item[1]):
                print(f"  {kind:32} {seconds:7.3f} s  {100 * seconds / total:5.1f} %")
            row["profile_s"] = {kind: round(s, 4) for kind, s in shares.items()}
        print(f"results: {write_results('p1_scheduler_loop', row)}")


if __name__ == "__main__":
    main()
