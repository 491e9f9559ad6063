"""P5 (pruning): prune a large run history while a fire is being recorded every 50 ms.

Fills a scratch database with ``--runs`` finished runs past the retention (plus
recent and unfinished runs that must survive), then calls ``run_maintenance``
with the daemon's budget until nothing is left, while a probe thread records a
scheduled fire (``Run.create_scheduled``, the scheduler's write) every 50 ms.
Reports pruning throughput, the longest single batch and the longest
``run_maintenance`` call (what a fire waits for if maintenance runs in the
scheduler's loop), and the probe's insert latency (what a fire waits for if
maintenance runs beside it). Goal (benchmarks.md P5): no fire blocked > 1 s.

    .venv/bin/python bench/p5_prune.py --db both            # 1,000,000 runs
    .venv/bin/python bench/p5_prune.py --db sqlite --runs 100000
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import db_choice_arguments, on_each_db, print_table, summary_ms, write_results

RECENT_RUNS = 1_000
ACTIVE_RUNS = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_choice_arguments(parser)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs to prune")
    parser.add_argument("--jobs", type=int, default=100, help="jobs the runs belong to")
    parser.add_argument("--stdout-bytes", type=int, default=200, help="captured output per run")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per maintenance call")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--probe-interval", type=float, default=0.05)
    return parser.parse_args()


def main() -> None:
    on_each_db(parse_args(), __file__, "p5", bench)


def bench(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    retention = timedelta(days=settings.RUNNER.run_retention_days)
    print(f"[{connection.vendor}] inserting {args.runs:,} runs ...", flush=True)
    fill_started = time.monotonic()
    create_jobs(args.jobs)
    insert_old_runs(args.runs, args.jobs, now - retention - timedelta(days=1), args.stdout_bytes)
    create_survivors(now, retention)
    fill_s = time.monotonic() - fill_started
    plan = query_plan(now)
    print(f"[{connection.vendor}] filled in {fill_s:.1f} s; pruning ...", flush=True)

    probe = FireProbe(args.probe_interval)
    probe.start()
    time.sleep(2)  # the probe's baseline, with nothing else writing
    probe.mark("pruning")
    prune = prune_all(now, args.budget, args.batch_size)
    probe.stop()
    leftover = count_leftovers(now, retention)
    report(args, connection.vendor, fill_s, plan, prune, probe, leftover)


def create_jobs(count: int) -> None:
    from runner.models import Job

    Job.objects.bulk_create(
        Job(id=f"p5-{i:03d}", name=f"P5 {i}", schedule="* * * * *", script="true")
        for i in range(count)
    )


def insert_old_runs(count: int, jobs: int, newest: datetime, stdout_bytes: int) -> None:
    """One INSERT ... SELECT over a generated series: a million rows in seconds."""
    from django.db import connection, transaction

    base = newest - timedelta(seconds=count)
    columns = (
        'job_id, status, "trigger", scheduled_for, created_at, started_at, finished_at, '
        "worker, duration_ms, exit_code, stdout, stderr, stdout_bytes, stderr_bytes, "
        "output_truncated, error, notes"
    )
    if connection.vendor == "sqlite":
        at = "datetime(%s, '+' || n || ' seconds')"
        sql = (
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < %s) "
            f"INSERT INTO runs ({columns}) SELECT printf('p5-%%03d', n %% %s), "
            "CASE WHEN n %% 10 = 0 THEN 'error' ELSE 'ok' END, 'schedule', "
            f"{at}, {at}, {at}, {at}, 'bench', 1000, 0, substr(hex(zeroblob(%s)), 1, %s), "
            "'', %s, 0, 0, '', '' FROM seq"
        )
        stamp = base.strftime("%Y-%m-%d %H:%M:%S")
        params = [count - 1, jobs, *[stamp] * 4, stdout_bytes, stdout_bytes, stdout_bytes]
    else:
        at = "%s + n * interval '1 second'"
        sql = (
            f"INSERT INTO runs ({columns}) SELECT 'p5-' || lpad((n %% %s)::text, 3, '0'), "
            "CASE WHEN n %% 10 = 0 THEN 'error' ELSE 'ok' END, 'schedule', "
            f"{at}, {at}, {at}, {at}, 'bench', 1000, 0, repeat('0', %s), '', %s, 0, false, '', '' "
            "FROM generate_series(0, %s) AS n"
        )
        params = [jobs, base, base, base, base, stdout_bytes, stdout_bytes, count - 1]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE runs")  # as autovacuum would after a bulk load


def create_survivors(now: datetime, retention: timedelta) -> None:
    """Recent finished runs and long-unfinished runs: none of them may be pruned."""
    from runner.models import Job, Run, RunStatus

    job = Job.objects.create(id="p5-keep", name="P5 keep", schedule="* * * * *", script="true")
    recent = now - retention / 2
    Run.objects.bulk_create(
        Run(job=job, status=RunStatus.OK, finished_at=recent) for _ in range(RECENT_RUNS)
    )
    long_ago = now - retention * 10
    Run.objects.bulk_create(
        Run(job=job, status=status, started_at=long_ago, heartbeat_at=long_ago)
        for status in [RunStatus.PENDING, RunStatus.RUNNING] * (ACTIVE_RUNS // 2)
    )


def query_plan(now: datetime) -> str:
    from django.conf import settings

    from runner.models import ACTIVE_RUN_STATUSES, Run

    cutoff = now - timedelta(days=settings.RUNNER.run_retention_days)
    old = Run.objects.filter(finished_at__lt=cutoff).exclude(status__in=ACTIVE_RUN_STATUSES)
    return old.order_by("finished_at").values_list("id", flat=True)[:500].explain()


class FireProbe(threading.Thread):
    """Records a scheduled fire every ``interval`` seconds and times each insert."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.phase = "idle"
        self.timings: dict[str, list[float]] = {"idle": [], "pruning": []}
        self._stopping = threading.Event()

    def mark(self, phase: str) -> None:
        self.phase = phase

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def run(self) -> None:
        from django.db import connection
        from django.utils import timezone

        from runner.models import Job, Run

        job = Job.objects.create(id="p5-probe", name="probe", schedule="* * * * *", script="x")
        instant = timezone.now()
        try:
            while not self._stopping.wait(self.interval):
                instant += timedelta(seconds=1)
                began = time.monotonic()
                Run.create_scheduled(job, instant)
                self.timings[self.phase].append(time.monotonic() - began)
        finally:
            connection.close()


def prune_all(now: datetime, budget_s: float, batch_size: int) -> dict[str, Any]:
    """Call run_maintenance until it reports nothing left; time every call."""
    from runner.maintenance import run_maintenance

    calls: list[float] = []
    longest_batch = 0.0
    pruned = batches = 0
    started = time.monotonic()
    while True:
        report = run_maintenance(now, budget_s, batch_size=batch_size)
        calls.append(report.elapsed_s)
        longest_batch = max(longest_batch, report.longest_batch_s)
        pruned += report.changed.get("runs", 0)
        batches += report.batches
        if not report.more:
            break
    return {
        "pruned": pruned,
        "seconds": time.monotonic() - started,
        "calls": len(calls),
        "batches": batches,
        "call": summary_ms(calls),
        "longest_batch_ms": round(longest_batch * 1000, 2),
    }


def count_leftovers(now: datetime, retention: timedelta) -> dict[str, int]:
    from runner.models import ACTIVE_RUN_STATUSES, Run

    return {
        "old_finished_left": Run.objects.filter(finished_at__lt=now - retention).count(),
        "recent_kept": Run.objects.filter(job_id="p5-keep", finished_at__isnull=False).count(),
        "active_kept": Run.objects.filter(status__in=ACTIVE_RUN_STATUSES, job_id="p5-keep").count(),
    }


def report(
    args: argparse.Namespace,
    vendor: str,
    fill_s: float,
    plan: str,
    prune: dict[str, Any],
    probe: FireProbe,
    leftover: dict[str, int],
) -> None:
    rate = prune["pruned"] / prune["seconds"] if prune["seconds"] else 0.0
    idle, during = summary_ms(probe.timings["idle"]), summary_ms(probe.timings["pruning"])
    print_table(
        ["db", "runs pruned", "s", "runs/s", "calls", "call max ms", "batch max ms",
         "fire p50 ms", "fire p99 ms", "fire max ms", "idle fire max ms"],
        [[vendor, f"{prune['pruned']:,}", round(prune["seconds"], 1), f"{rate:,.0f}",
          prune["calls"], prune["call"]["max_ms"], prune["longest_batch_ms"],
          during["p50_ms"], during["p99_ms"], during["max_ms"], idle["max_ms"]]],
    )  # fmt: skip
    ok = leftover == {"old_finished_left": 0, "recent_kept": RECENT_RUNS, "active_kept": 10}
    print(f"survivors: {leftover} ({'as expected' if ok else 'WRONG'})")
    path = write_results(
        f"p5_prune-{vendor}",
        {
            "settings": vars(args) | {"db": vendor},
            "fill_seconds": round(fill_s, 1),
            "select_plan": plan,
            "prune": prune | {"runs_per_second": round(rate)},
            "fire_probe": {"idle": idle, "pruning": during, "count": len(probe.timings["pruning"])},
            "survivors": leftover,
            "survivors_as_expected": ok,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
