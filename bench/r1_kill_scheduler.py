"""R1: kill -9 the scheduler with runs in flight, restart it; is every run accounted for?

Ten jobs start a long script at the same instant; three every-second jobs (one per
missed-fire policy) run beside them. Once the ten are running the scheduler is
killed with SIGKILL — its main process only (``main``), or its whole process group,
workers included (``group``) — and started again a moment later, as a supervisor
would. Goals (benchmarks.md): every in-flight run reaches a final status with a
clear reason within the liveness bound; no fire is lost beyond the job's
missed-fire policy; none runs twice.

    .venv/bin/python bench/r1_kill_scheduler.py
    .venv/bin/python bench/r1_kill_scheduler.py --database-url postgres://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import (
    Daemons,
    executions,
    print_table,
    probe_script,
    scratch_database,
    wait_for,
    write_results,
)

POLICIES = ("skip", "latest", "all")
SECOND = timedelta(seconds=1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--in-flight", type=int, default=10, help="long runs when the kill lands")
    parser.add_argument("--modes", default="main,group", help="comma list of main, group")
    parser.add_argument("--restart-after", type=float, default=1.0, help="seconds down")
    parser.add_argument("--after-restart", type=float, default=5.0, help="seconds to watch after")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch_database(args.database_url, "r1") as scratch:
        results = [drill(mode, args, scratch.env) for mode in args.modes.split(",")]
    show(results, args)


def drill(mode: str, args: argparse.Namespace, env: dict[str, str]) -> dict:
    from django.conf import settings

    from runner.models import Job, Run

    print(f"== {mode}: kill -9 {'the main process' if mode == 'main' else 'the process group'}")
    logs = Path(tempfile.mkdtemp(prefix=f"jeeves-r1-{mode}-"))
    marker = logs / "ran"
    daemons = Daemons({**env, "JEEVES_MAX_CONCURRENCY": str(args.in_flight + len(POLICIES))}, logs)
    try:
        first = daemons.start("runscheduler")
        daemons.wait_ready(first)
        for policy in POLICIES:
            Job.objects.create(
                id=f"{mode}-tick-{policy}",
                name=f"every second, missed-fire policy {policy}",
                schedule="* * * * * *",
                script=probe_script(marker),
                source_type="inline",
                missed_fire_policy=policy,
                overlap_policy="allow",
            )
        slot = (datetime.now(UTC) + 3 * SECOND).replace(microsecond=0)
        for n in range(args.in_flight):
            Job.objects.create(
                id=f"{mode}-long-{n}",
                name="long",
                schedule=f"{slot.second} * * * * *",
                script=probe_script(marker, "sleep 600"),
                source_type="inline",
            )
        long_runs = Run.objects.filter(job__id__startswith=f"{mode}-long-")
        wait_for(
            "the long runs to be running",
            lambda: long_runs.filter(status="running").count() == args.in_flight,
            timeout=30,
        )
        killed_at = datetime.now(UTC)
        if mode == "main":
            os.kill(first.pid, signal.SIGKILL)
        else:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        time.sleep(args.restart_after)
        restarted_at = datetime.now(UTC)
        second = daemons.start("runscheduler")
        daemons.wait_ready(second)
        bound = (settings.RUNNER.liveness_timeout_ms + 5000) / 1000 + args.restart_after + 10
        wait_for(
            "every in-flight run to end",
            lambda: not long_runs.filter(status__in=("pending", "running")).exists(),
            timeout=bound + 30,
        )
        all_final_at = datetime.now(UTC)
        time.sleep(args.after_restart)
        os.killpg(second.pid, signal.SIGTERM)
        exit_status = second.wait(timeout=60)
        return summarise(
            mode, marker, killed_at, restarted_at, all_final_at, exit_status, long_runs, bound
        )
    finally:
        daemons.kill_all()


def summarise(mode, marker, killed_at, restarted_at, all_final_at, exit_status, long_runs, bound):
    from django.db.models import Count

    from runner.models import Run

    ended = list(long_runs.order_by("id"))
    times = [(run.finished_at - killed_at).total_seconds() for run in ended]
    reasons = sorted({re.sub(r"\d+", "N", run.error.split(";")[0]) for run in ended})
    counts = executions(marker)
    mine = Run.objects.filter(job__id__startswith=f"{mode}-")
    twice_recorded = (
        mine.values("job_id", "scheduled_for").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    lost = {policy: lost_fires(f"{mode}-tick-{policy}", policy) for policy in POLICIES}
    return {
        "mode": mode,
        "in_flight": len(ended),
        "statuses": dict(sorted(_count(run.status for run in ended).items())),
        "reasons": reasons,
        "final_within_s": round(max(times), 2) if times else None,
        "liveness_bound_s": round(bound, 1),
        "down_s": round((restarted_at - killed_at).total_seconds(), 2),
        "executed_twice": sum(1 for n in counts.values() if n > 1),
        "recorded_twice": twice_recorded,
        "lost_fires_beyond_policy": lost,
        "missed_fire_records": {
            policy: [
                run.error
                for run in Run.objects.filter(job_id=f"{mode}-tick-{policy}", status="skipped")
            ]
            for policy in POLICIES
        },
        "exit_status_after_sigterm": exit_status,
        "all_final_at": all_final_at.isoformat(),
    }


def lost_fires(job_id: str, policy: str) -> int:
    """Instants between the job's first and last fire with no run that its policy allows.

    ``skip`` allows the instants a skipped run says were missed; ``latest`` allows a
    gap ending just before a run; ``all`` allows none.
    """
    from runner.models import Run

    runs = list(Run.objects.filter(job_id=job_id).order_by("scheduled_for"))
    if not runs:
        return 0
    recorded = {run.scheduled_for for run in runs}
    covered = set()
    for run in runs:
        match = re.search(r"between (\S+) and (\S+)", run.error)
        if match:
            start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in match.groups())
            covered |= {start + n * SECOND for n in range(int((end - start).total_seconds()) + 1)}
    lost, instant = 0, runs[0].scheduled_for
    gap = 0
    while instant <= runs[-1].scheduled_for:
        if instant in recorded:
            if gap and policy == "latest":
                gap = 0  # a latest catch-up run ends the gap it stands for
            lost += gap
            gap = 0
        elif instant not in covered:
            gap += 1
        instant += SECOND
    return lost


def _count(values) -> dict:
    counts: dict = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def show(results: list[dict], args: argparse.Namespace) -> None:
    print()
    print_table(
        ("mode", "in flight", "final within s", "bound s", "statuses", "twice", "lost fires"),
        [
            (
                r["mode"],
                r["in_flight"],
                r["final_within_s"],
                r["liveness_bound_s"],
                ",".join(f"{k}:{v}" for k, v in r["statuses"].items()),
                r["executed_twice"] + r["recorded_twice"],
                sum(r["lost_fires_beyond_policy"].values()),
            )
            for r in results
        ],
    )
    for r in results:
        print(f"\n{r['mode']}: reasons: {r['reasons']}")
        print(
            f"{r['mode']}: exit status after SIGTERM to the restarted scheduler: "
            f"{r['exit_status_after_sigterm']}"
        )
    path = write_results("r1_kill_scheduler", {"args": vars(args), "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
