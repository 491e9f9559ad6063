"""P2 (throughput): N no-op runs through the real dispatch path vs a bare thread loop.

Issue 12's P2, as specified: ``--runs`` (2,000) manual runs of a no-op script job are
recorded and handed to the workers by ``runner.dispatch.dispatch`` (the ORM broker's
rows, as the scheduler and "Run now" do), and ``manage.py runscheduler`` with
``maxConcurrency`` = ``--concurrency`` (4) executes them: pusher claim, django-q2
worker task, the run pool, ``execute_run`` (start, supervised child, finish,
announcement). The clock runs from the dispatch to the last run's ``finished_at``.
The same script is then run ``--runs`` times by ``--concurrency`` threads calling
``subprocess.run`` (capturing output), before and after the runner, in this process.

Reported: both rates, their ratio (goal ≥ 0.7), and the CPU (user + system, psutil)
the runner's own processes (scheduler, sentinel, pusher, monitor, worker; not the
scripts) used over the runner's window, per run (goal ≤ 2 ms on SQLite).

    .venv/bin/python bench/p2_dispatch_throughput.py [--runs 2000] [--concurrency 4]
        [--db sqlite|postgres://postgres@127.0.0.1:5432] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.profile_breakdown import breakdown
from bench.support import (
    ROOT,
    Daemons,
    database_vendor,
    db_argument,
    print_table,
    scratch_database,
    summary_ms,
    wait_for,
    write_results,
)

NOOP = "#!/bin/sh\nexit 0\n"
# py-spy: only threads holding the GIL (CPU); P2_PROFILE_WALL=1 samples every thread.
PYSPY_MODE = ["--idle"] if os.environ.get("P2_PROFILE_WALL") else ["--gil"]
# Samples a second; P2_PROFILE_RATE=1000 for a finer breakdown of a short run.
PYSPY_RATE = os.environ.get("P2_PROFILE_RATE", "100")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=40, help="runs before the measured ones")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the runner with py-spy (--gil: only threads holding the GIL) over the "
        "runner's window; collapsed stacks to bench/results/, a breakdown printed",
    )
    db_argument(parser)
    return parser.parse_args()


def tree_cpu(pid: int, kind: str = "both") -> dict[int, float]:
    """CPU seconds (``kind``: user, system or both) of ``pid`` and each Python process
    below it (not the scripts), by pid."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    used = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if "python" in process.name() or process.pid == pid:
                times = process.cpu_times()
                used[process.pid] = {"user": times.user, "system": times.system}.get(
                    kind, times.user + times.system
                )
    return used


def tree_switches(pid: int) -> int:
    """Context switches so far of the threads alive now in ``pid`` and the Python
    processes below it (Linux: /proc/PID/task/*/status). Each is a thread handing the
    CPU or the GIL to another; a thread that ended is not counted."""
    total = 0
    for process in tree_cpu(pid):
        for status in Path(f"/proc/{process}/task").glob("*/status"):
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                        total += int(line.split()[-1])
    return total


def bare_loop(argv: list[str], cwd: Path, runs: int, threads: int) -> float:
    """Seconds for ``threads`` threads to run ``argv`` ``runs`` times in all."""
    left = iter(range(runs))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            subprocess.run(argv, cwd=cwd, capture_output=True, check=True)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started


def through_runner(job, runs: int, timeout: float) -> tuple[float, list[int]]:
    """Record and dispatch ``runs`` manual runs at once; seconds until the last finished."""
    from django.db import transaction
    from django.db.models import Max
    from django.utils import timezone

    from runner import dispatch
    from runner.models import FINAL_RUN_STATUSES, Run, RunTrigger

    now = timezone.now()
    with transaction.atomic():
        made = Run.objects.bulk_create(
            Run(job=job, trigger=RunTrigger.MANUAL, scheduled_for=now) for _ in range(runs)
        )
        ids = [run.pk for run in made]
        if None in ids:  # a backend without RETURNING on bulk insert
            ids = list(Run.objects.filter(scheduled_for=now).values_list("pk", flat=True))
        dispatch.dispatch(ids)
    started = now
    runs_of = Run.objects.filter(pk__in=ids)
    wait_for(
        f"{runs} runs to finish",
        lambda: runs_of.filter(status__in=FINAL_RUN_STATUSES).count() == runs,
        timeout,
        every=0.2,
    )
    last = runs_of.aggregate(last=Max("finished_at"))["last"]
    return (last - started).total_seconds(), ids


def main() -> None:
    args = parse_args()
    # This process signs the tasks it dispatches: the runner must verify them with the
    # same key (the client's set-up would otherwise borrow a random one).
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    with scratch_database(args.db, "p2d") as scratch:
        from django.conf import settings
        from django.db.models import Count

        from runner.execution.process import resolve_command
        from runner.jobs import upsert_job
        from runner.models import Run

        script = scratch.directory / "noop.sh"
        script.write_text(NOOP)
        script.chmod(0o755)
        job, _ = upsert_job(
            {"id": "p2-noop", "name": "no-op", "schedule": "0 0 1 1 *", "script": str(script)}
        )
        argv = resolve_command(str(script), settings.RUNNER.runners)
        bare_loop(argv, scratch.directory, 50, args.concurrency)  # warm the page cache
        bare_before = bare_loop(argv, scratch.directory, args.runs, args.concurrency)

        logs = scratch.directory / "logs"
        logs.mkdir()
        daemons = Daemons(scratch.env, logs)
        try:
            scheduler = daemons.start("runscheduler", JEEVES_MAX_CONCURRENCY=str(args.concurrency))
            daemons.wait_ready(scheduler)
            through_runner(job, args.warmup, timeout=120)
            spy = start_profiler(scheduler.pid, scratch.directory) if args.profile else None
            cpu_before, sys_before = tree_cpu(scheduler.pid), tree_cpu(scheduler.pid, "system")
            switches_before = tree_switches(scheduler.pid)
            seconds, ids = through_runner(job, args.runs, timeout=600)
            switches = tree_switches(scheduler.pid) - switches_before
            cpu_after, sys_after = tree_cpu(scheduler.pid), tree_cpu(scheduler.pid, "system")
            profile = finish_profiler(spy, scratch.directory, args.runs) if spy else None
        finally:
            daemons.kill_all()
            problems = [
                line
                for line in scheduler.log.read_text(errors="replace").splitlines()
                if " ERROR " in line or " CRITICAL " in line
            ]
        bare_after = bare_loop(argv, scratch.directory, args.runs, args.concurrency)
        statuses = dict(
            Run.objects.filter(pk__in=ids).values_list("status").annotate(n=Count("pk")).order_by()
        )
        durations = list(Run.objects.filter(pk__in=ids).values_list("duration_ms", flat=True))
        vendor = database_vendor()

    cpu = {pid: used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items()}
    cpu_total = sum(cpu.values())
    system_total = sum(used - sys_before.get(pid, 0.0) for pid, used in sys_after.items())
    bare_s = (bare_before + bare_after) / 2
    figures = {
        "database": vendor,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "argv": argv,
        "runner_s": seconds,
        "runner_runs_per_s": args.runs / seconds,
        "bare_s": [bare_before, bare_after],
        "bare_runs_per_s": args.runs / bare_s,
        "rate_ratio": bare_s / seconds,
        "runner_cpu_s": cpu_total,
        "runner_cpu_ms_per_run": cpu_total * 1000 / args.runs,
        "runner_system_cpu_ms_per_run": system_total * 1000 / args.runs,
        "runner_context_switches_per_run": switches / args.runs,
        "cpu_s_by_process": sorted(cpu.values(), reverse=True),
        "statuses": statuses,
        "run_duration": summary_ms([d / 1000 for d in durations if d is not None]),
        "profile": profile,
        "log_errors": len(problems),
    }
    path = write_results("p2_dispatch_throughput", figures)
    print(f"P2: {args.runs} runs of `{' '.join(argv)}` at concurrency {args.concurrency}, {vendor}")
    print_table(
        ["path", "seconds", "runs/s", "CPU ms a run (runner's processes)"],
        [
            ["runner (dispatch → workers)", seconds, figures["runner_runs_per_s"],
             figures["runner_cpu_ms_per_run"]],
            ["bare subprocess.run threads", bare_s, figures["bare_runs_per_s"], "-"],
        ],
    )  # fmt: skip
    print(f"rate ratio runner/bare: {figures['rate_ratio']:.2f} (goal ≥ 0.7)")
    print(f"bare before / after: {bare_before:.2f} s / {bare_after:.2f} s")
    print(
        f"CPU by process, s: {', '.join(f'{s:.2f}' for s in figures['cpu_s_by_process'])}; "
        f"of it in the kernel: {figures['runner_system_cpu_ms_per_run']:.2f} ms a run; "
        f"{figures['runner_context_switches_per_run']:.1f} context switches a run"
    )
    print(f"run statuses: {statuses}; run duration_ms {figures['run_duration']}")
    if problems:
        print(f"the runner logged {len(problems)} errors, first: {problems[0]}")
    print(f"written to {path}")


def start_profiler(pid: int, work: Path) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
        "--subprocesses", "--rate", PYSPY_RATE, "--format", "raw", "--nonblocking", *PYSPY_MODE,
        "--output", str(work / "profile.txt"),
    ]  # fmt: skip
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches to every process first
    return spy


def finish_profiler(spy: subprocess.Popen, work: Path, runs: int) -> str | None:
    spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
    source = work / "profile.txt"
    if not source.exists():
        print("py-spy wrote no profile (is ptrace allowed?)")
        return None
    target = ROOT / "bench" / "results" / f"p2_profile_{time.strftime('%Y%m%dT%H%M%S')}.txt"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(source, target)
    print(breakdown(target.read_text(), runs), flush=True)
    return str(target.relative_to(ROOT))


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    main()
