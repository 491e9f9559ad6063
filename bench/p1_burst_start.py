"""P1's burst inside one worker process: how fast does the pool start N runs due at once?

Records N pending runs of N inline-bash jobs (each appends the time of its first
instruction and its run id to a file, as P1's probe does), all scheduled for one
instant a moment ahead, hands them to a worker pool (``runner.tasks``' own pool, as a
cluster worker makes it), and reports each script's lag behind the instant: P1's
burst without the scheduler, the broker and the other processes, so a change to the
start path can be measured in seconds, repeatably, and profiled
(``--profile`` writes a cProfile of the process to bench/results/).

    .venv/bin/python bench/p1_burst_start.py [--runs 100] [--rounds 5] [--db sqlite|postgres://...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import print_table, scratch_database, summary_ms, write_results

PROBE = 'printf "%s %s\\n" "$EPOCHREALTIME" "$JR_RUN_ID" >> {out}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--lead", type=float, default=0.3, help="seconds from submit to the instant"
    )
    parser.add_argument("--db", help="default: a scratch SQLite file")
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()

    with scratch_database(options.db, "p1burst") as scratch:
        from django.utils import timezone

        from runner import pool, tasks, worker_state
        from runner.execution.spawn import allow_fast_spawn
        from runner.jobs import upsert_job
        from runner.models import Run

        out = scratch.directory / "fires.txt"
        jobs = [
            upsert_job(
                {
                    "id": f"burst-{n:04d}",
                    "name": f"burst {n}",
                    "schedule": "0 0 1 1 *",
                    "script": PROBE.format(out=out),
                    "source_type": "inline",
                }
            )[0]
            for n in range(options.runs)
        ]
        os.setpgid(0, 0)
        allow_fast_spawn()
        the_pool = pool.current(tasks._make_pool)
        profiler = None
        if options.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        lags: list[float] = []
        cpu = time.process_time()
        for _round in range(options.rounds):
            at = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
            while (at - timezone.now()).total_seconds() > options.lead:
                time.sleep(0.01)
            ids = {
                Run.objects.create(job=job, trigger="schedule", scheduled_for=at).pk for job in jobs
            }
            for run_id in sorted(ids):
                tasks.run_task(run_id)
            handed = (timezone.now() - at).total_seconds()
            if handed > 0:
                print(f"round {_round}: the runs were handed over {handed * 1000:.0f} ms late")
            assert the_pool.wait_idle(60)
            seen = {}
            for line in out.read_text().split("\n"):
                if line:
                    moment, run_id = line.split()
                    seen[int(run_id)] = float(moment)
            lags += [seen[run_id] - at.timestamp() for run_id in ids if run_id in seen]
            missing = len(ids - seen.keys())
            if missing:
                print(f"round {_round}: {missing} of {len(ids)} scripts did not run")
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
        the_pool.close(10)
        worker_state.STOPPING.clear()
        lag = summary_ms(lags)
        print_table(
            ["runs a round", "rounds", "p50 ms", "p99 ms", "max ms", "CPU ms a run"],
            [
                [
                    options.runs,
                    options.rounds,
                    lag["p50_ms"],
                    lag["p99_ms"],
                    lag["max_ms"],
                    cpu / max(len(lags), 1) * 1000,
                ]
            ],
        )
        path = write_results("p1_burst_start", {"lag": lag, "cpu_s": cpu, "runs": len(lags)})
        if profiler is not None:
            profiler.dump_stats(str(path.with_suffix(".prof")))
            print(f"profile: {path.with_suffix('.prof')}")


if __name__ == "__main__":
    main()
