"""S1 (P7): sustained scale-out -- N runs a minute, 2 clock-only schedulers, 2 worker hosts.

    .venv/bin/python bench/s1_scale.py                                # 10,000 a minute, 10 min
    .venv/bin/python bench/s1_scale.py --rate 1200 --minutes 1        # a short run
    .venv/bin/python bench/s1_scale.py --db sqlite --rate 600 --minutes 1

``--rate`` jobs on a scratch database (PostgreSQL by default), job ``n`` on the
6-field cron ``<n mod 60> * * * * *``: each fires once a minute, and together they
fire ``--rate`` times a minute, spread over the seconds. ``--schedulers``
``runscheduler --no-workers`` processes (clock only) record and dispatch the fires;
``--worker-hosts`` ``runworkers`` processes (as on other hosts) run them. The job is
an inline script whose first line notes its run id and the time.

Over a window of ``--minutes`` starting ``--warmup`` seconds after the daemons are
ready, every (job, instant) should run exactly once: **missing** counts instants with
no run recorded, **not run** runs recorded but never started (skipped, still pending),
**dup** runs recorded twice or started twice. **Lag** = the script's first line -
its instant. CPU is the daemons' whole process trees (user + system) over the window.
Goal (issue 12, P7): at 10,000 a minute for 10 minutes on PostgreSQL, 0 missing,
0 duplicated, p99 lag ≤ 500 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

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
GRACE_S = 15  # after the window, for the last fires to start before the count


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a postgres:// server URL (a scratch database is made on it) or 'sqlite'",
    )
    parser.add_argument("--rate", type=int, default=10_000, help="runs a minute (= jobs)")
    parser.add_argument("--minutes", type=float, default=10, help="measured minutes")
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--worker-hosts", type=int, default=2)
    parser.add_argument(
        "--concurrency", type=int, default=0, help="JEEVES_MAX_CONCURRENCY (0: the default)"
    )
    parser.add_argument("--warmup", type=float, default=20, help="seconds before the window")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch_database(args.db, "s1") as scratch:
        result = drill(args, scratch.env)
    show(result, args)


def drill(args: argparse.Namespace, env: dict[str, str]) -> dict:
    from runner.models import Job

    logs = Path(tempfile.mkdtemp(prefix="jeeves-s1-"))
    marker = logs / "ran"
    Job.objects.bulk_create(
        (
            Job(
                id=f"s1-{n:05d}",
                name=f"scale {n}",
                schedule=f"{n % 60} * * * * *",
                script=probe_script(marker),
                source_type="inline",
            )
            for n in range(args.rate)
        ),
        batch_size=500,
    )
    if args.concurrency:
        env = {**env, "JEEVES_MAX_CONCURRENCY": str(args.concurrency)}
    daemons = Daemons(env, logs)
    try:
        schedulers = [daemons.start("runscheduler", "--no-workers") for _ in range(args.schedulers)]
        hosts = [daemons.start("runworkers") for _ in range(args.worker_hosts)]
        for process in schedulers:
            daemons.wait_ready(process, timeout=300)
        start = (datetime.now(UTC) + args.warmup * SECOND).replace(microsecond=0) + SECOND
        end = start + timedelta(minutes=args.minutes) - SECOND
        print(f"measuring {start:%H:%M:%S} to {end:%H:%M:%S} UTC", flush=True)
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
        load_start, cpu_start = os.getloadavg(), _cpu(schedulers, hosts)
        time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1)
        cpu_end, load_end = _cpu(schedulers, hosts), os.getloadavg()
        time.sleep(GRACE_S)
        for process in [*schedulers, *hosts]:
            process.send_signal(signal.SIGTERM)
        exits = [process.wait(timeout=120) for process in [*schedulers, *hosts]]
        result = measure(args, marker, start, end)
        window_s = (end - start).total_seconds() + 1
        cpu = {role: cpu_end[role] - cpu_start[role] for role in cpu_end}
        result |= {
            "exit_statuses": exits,
            "load": [round(x, 2) for x in (*load_start, *load_end)],
            "cpu_s": {role: round(s, 2) for role, s in cpu.items()},
            "cpu_ms_per_run": round(1000 * sum(cpu.values()) / max(result["executed"], 1), 2),
            "cpu_cores": round(sum(cpu.values()) / window_s, 2),
            "logs": str(logs),
        }
        return result
    finally:
        daemons.kill_all()


def _cpu(schedulers: list, hosts: list) -> dict[str, float]:
    return {
        "schedulers": sum(_tree_cpu(p.pid) for p in schedulers),
        "worker_hosts": sum(_tree_cpu(p.pid) for p in hosts),
    }


def _tree_cpu(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def expected_fires(rate: int, start: datetime, end: datetime) -> set[tuple[str, datetime]]:
    """Every (job, instant) in [start, end]: job n fires at second n mod 60 of each minute."""
    by_second: dict[int, list[str]] = {}
    for n in range(rate):
        by_second.setdefault(n % 60, []).append(f"s1-{n:05d}")
    fires, moment = set(), start
    while moment <= end:
        fires.update((job_id, moment) for job_id in by_second.get(moment.second, ()))
        moment += SECOND
    return fires


def measure(args: argparse.Namespace, marker: Path, start: datetime, end: datetime) -> dict:
    from runner.models import Run

    wait_for("the database", lambda: True, timeout=1)
    runs = list(
        Run.objects.filter(scheduled_for__range=(start, end), trigger="schedule").values_list(
            "pk", "job_id", "scheduled_for", "status"
        )
    )
    expected = expected_fires(args.rate, start, end)
    per_fire = Counter((job_id, at) for _, job_id, at, _ in runs)
    started = Counter(run_id for run_id, _ in probe_lines(marker))
    first_line: dict[int, float] = {}
    for run_id, at in probe_lines(marker):
        first_line.setdefault(run_id, at)
    instants = {pk: at for pk, _, at, _ in runs}
    lags = [first_line[pk] - at.timestamp() for pk, at in instants.items() if pk in first_line]
    return {
        "rate_per_minute": args.rate,
        "minutes": args.minutes,
        "schedulers": args.schedulers,
        "worker_hosts": args.worker_hosts,
        "window": [start.isoformat(), end.isoformat()],
        "expected": len(expected),
        "runs": len(runs),
        "executed": sum(1 for pk in instants if started[pk]),
        "missing": len(expected - set(per_fire)),
        "not_run": sum(1 for pk in instants if not started[pk]),
        "recorded_twice": sum(1 for n in per_fire.values() if n > 1),
        "started_twice": sum(1 for pk in instants if started[pk] > 1),
        "statuses": dict(Counter(status for *_, status in runs)),
        "lag_ms": {
            q: None if (v := percentile(lags, q)) is None else round(1000 * v, 1)
            for q in (50, 99, 100)
        },
    }


def show(r: dict, args: argparse.Namespace) -> None:
    print()
    print_table(
        ("rate/min", "min", "expected", "runs", "missing", "not run", "dup", "p50 ms", "p99 ms",
         "max ms", "CPU ms/run", "cores"),
        [(r["rate_per_minute"], r["minutes"], r["expected"], r["runs"], r["missing"],
          r["not_run"], r["recorded_twice"] + r["started_twice"], r["lag_ms"][50],
          r["lag_ms"][99], r["lag_ms"][100], r["cpu_ms_per_run"], r["cpu_cores"])],
    )  # fmt: skip
    print(
        f"\nstatuses {r['statuses']}; CPU s {r['cpu_s']}; load {r['load']}; "
        f"daemons exited {r['exit_statuses']} after SIGTERM; logs {r['logs']}"
    )
    database = "SQLite" if args.db == "sqlite" else "PostgreSQL"
    path = write_results("s1_scale", {"database": database, "args": vars(args), **r})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
