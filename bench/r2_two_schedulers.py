"""R2: two schedulers on one PostgreSQL database; does each (job, instant) run exactly once?

Two ``runscheduler`` processes, each with its own workers, share one database
with 50 every-second jobs for two minutes. Every (job, scheduled instant) in the
measured window should have exactly one run, executed once: ``missing`` counts
instants without a run, ``duplicated`` runs recorded or executed more than once.
The lag of each script's first line behind its instant is reported too.

    .venv/bin/python bench/r2_two_schedulers.py                      # PostgreSQL on 127.0.0.1
    .venv/bin/python bench/r2_two_schedulers.py --jobs 10 --duration 20
    .venv/bin/python bench/r2_two_schedulers.py --database-url ""    # SQLite instead
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import (
    Daemons,
    percentile,
    print_table,
    probe_lines,
    probe_script,
    scratch_database,
    wait_for,
    write_results,
)

SECOND = timedelta(seconds=1)
WARMUP = 3 * SECOND


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server URL (a scratch database is made on it); empty for SQLite",
    )
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--duration", type=int, default=120, help="measured seconds")
    parser.add_argument("--concurrency", type=int, default=8, help="workers per scheduler")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch_database(args.database_url, "r2") as scratch:
        result = drill(args, scratch.env)
    show(result, args)


def drill(args: argparse.Namespace, env: dict[str, str]) -> dict:
    from runner.models import Job

    logs = Path(tempfile.mkdtemp(prefix="jeeves-r2-"))
    marker = logs / "ran"
    Job.objects.bulk_create(
        Job(
            id=f"every-{n}",
            name=f"every second {n}",
            schedule="* * * * * *",
            script=probe_script(marker),
            source_type="inline",
            overlap_policy="allow",
        )
        for n in range(args.jobs)
    )
    daemons = Daemons({**env, "JEEVES_MAX_CONCURRENCY": str(args.concurrency)}, logs)
    try:
        schedulers = [daemons.start("runscheduler"), daemons.start("runscheduler")]
        for process in schedulers:
            daemons.wait_ready(process)
        start = (datetime.now(UTC) + WARMUP).replace(microsecond=0) + SECOND
        end = start + args.duration * SECOND - SECOND
        print(f"measuring {start:%H:%M:%S} to {end:%H:%M:%S} UTC ({args.duration} s)", flush=True)
        time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 3)
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        exits = [process.wait(timeout=120) for process in schedulers]
        return measure(args, marker, start, end, exits)
    finally:
        daemons.kill_all()


def measure(args, marker: Path, start: datetime, end: datetime, exits: list[int]) -> dict:
    from runner.models import Run

    wait_for("the database", lambda: True, timeout=1)
    runs = list(
        Run.objects.filter(scheduled_for__range=(start, end)).values_list(
            "pk", "job_id", "scheduled_for", "status", "started_at"
        )
    )
    per_fire = Counter((job_id, at) for _, job_id, at, _, _ in runs)
    expected = {
        (f"every-{n}", start + k * SECOND) for n in range(args.jobs) for k in range(args.duration)
    }
    lines = probe_lines(marker)
    executed = Counter(run_id for run_id, _ in lines)
    in_window = {pk: at for pk, _, at, _, _ in runs}
    first_line = {run_id: at for run_id, at in lines if run_id in in_window}
    lags = [first_line[pk] - in_window[pk].timestamp() for pk in first_line]
    start_lags = [(s - at).total_seconds() for _, _, at, _, s in runs if s is not None]
    return {
        "jobs": args.jobs,
        "duration_s": args.duration,
        "expected_fires": len(expected),
        "runs": len(runs),
        "missing": len(expected - set(per_fire)),
        "recorded_twice": sum(1 for n in per_fire.values() if n > 1),
        "executed_twice": sum(1 for pk in in_window if executed[pk] > 1),
        "never_executed": sum(1 for pk in in_window if executed[pk] == 0),
        "statuses": dict(Counter(status for _, _, _, status, _ in runs)),
        "first_line_lag_ms": _ms({"p50": percentile(lags, 50), "p99": percentile(lags, 99)}),
        "start_lag_ms": _ms({"p50": percentile(start_lags, 50), "p99": percentile(start_lags, 99)}),
        "exit_statuses": exits,
    }


def _ms(values: dict) -> dict:
    return {k: None if v is None else round(v * 1000, 1) for k, v in values.items()}


def show(r: dict, args: argparse.Namespace) -> None:
    print()
    print_table(
        ("jobs", "s", "expected", "runs", "missing", "dup", "not run", "lag p50", "lag p99"),
        [
            (
                r["jobs"],
                r["duration_s"],
                r["expected_fires"],
                r["runs"],
                r["missing"],
                r["recorded_twice"] + r["executed_twice"],
                r["never_executed"],
                r["first_line_lag_ms"]["p50"],
                r["first_line_lag_ms"]["p99"],
            )
        ],
    )
    print(f"\nstatuses {r['statuses']}; schedulers exited {r['exit_statuses']} after SIGTERM")
    database = "PostgreSQL" if args.database_url else "SQLite"
    path = write_results("r2_two_schedulers", {"database": database, "args": vars(args), **r})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
