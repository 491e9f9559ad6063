"""P2 in small: what the executor path adds to running a no-op script.

Runs a no-op script N times through trigger_job's path (a manual run recorded,
then ``execute_run``: conditional start, heartbeat thread, supervised child,
finish), N times through ``run_process`` alone (the supervision without the run
record) and N times as a bare ``subprocess.run`` capturing output, interleaved
in one process so all three see the same machine. Prints a table and writes
bench/results/p2_executor_overhead-<time>.json.

    .venv/bin/python bench/p2_executor_overhead.py [--runs 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import (
    database_vendor,
    print_table,
    scratch_database,
    summary_ms,
    write_results,
)

NOOP = "#!/bin/sh\nexit 0\n"


def summary(seconds: list[float]) -> dict[str, float | None]:
    """Mean, p50, p99 and max in milliseconds."""
    return {"mean_ms": statistics.fmean(seconds) * 1000, **summary_ms(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    options = parser.parse_args()

    with scratch_database(options.database_url, "p2") as scratch:
        from django.conf import settings
        from django.utils import timezone

        from runner.execution.executor import execute_run
        from runner.execution.process import resolve_command, run_process
        from runner.jobs import upsert_job
        from runner.models import Job, Run

        directory = scratch.directory
        script = directory / "noop.sh"
        script.write_text(NOOP)
        job, _ = upsert_job(
            {"id": "bench-noop", "name": "no-op", "schedule": "0 0 1 1 *", "script": str(script)}
        )
        argv = resolve_command(str(script), settings.RUNNER.runners)

        def through_executor() -> None:
            run = Run.create_manual(job, timezone.now())
            assert execute_run(run.pk).status == "ok"

        def supervised() -> None:
            result = run_process(
                argv, env=os.environ, cwd=str(directory), timeout_s=None, grace_s=5, tail_lines=100
            )
            assert result.exit_code == 0

        def bare() -> None:
            subprocess.run(argv, cwd=directory, capture_output=True, check=True)

        for _ in range(5):  # warm-up: imports, connections, page cache
            through_executor()
            bare()
        paths = {"executor": through_executor, "run_process": supervised, "bare": bare}
        timings: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(options.runs):
            for name, call in paths.items():
                started = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - started)
        Job.objects.filter(pk=job.pk).delete()

        executor, plain = summary(timings["executor"]), summary(timings["bare"])
        process_only = summary(timings["run_process"])
        figures = {
            "runs": options.runs,
            "argv": argv,
            "executor": executor,
            "run_process": process_only,
            "bare_subprocess_run": plain,
            "overhead_per_run_ms": executor["mean_ms"] - plain["mean_ms"],
            "time_ratio_executor_to_bare": executor["mean_ms"] / plain["mean_ms"],
            "throughput_ratio_executor_to_bare": plain["mean_ms"] / executor["mean_ms"],
        }
        vendor = database_vendor()
        path = write_results("p2_executor_overhead", {"database": vendor, **figures})

    print(f"{options.runs} runs each of `{' '.join(argv)}`, interleaved, on {vendor}")
    rows = (("execute_run", executor), ("run_process", process_only), ("subprocess.run", plain))
    print_table(
        ["path", "mean ms", "p50 ms", "p99 ms", "max ms"],
        [
            [label, row["mean_ms"], row["p50_ms"], row["p99_ms"], row["max_ms"]]
            for label, row in rows
        ],
    )
    print(f"overhead per run: {figures['overhead_per_run_ms']:.2f} ms")
    print(f"time ratio executor/bare: {figures['time_ratio_executor_to_bare']:.2f}")
    print(f"throughput ratio executor/bare: {figures['throughput_ratio_executor_to_bare']:.2f}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
