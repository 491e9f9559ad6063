"""R14: the database goes away under a running scheduler; what does the scheduler do?

A clock-only ``runscheduler --no-workers`` plans 20 every-second jobs and 20 jobs
every 10 s (missed-fire policies ``latest`` and ``skip``). After a quiet baseline the
database is taken away for ``--outage`` seconds, in one of these ways:

* ``sqlite-lock``: another connection holds SQLite's write lock (``BEGIN IMMEDIATE``);
  the scheduler's writes wait on its busy timeout (30 s by default);
* ``sqlite-lock-busy1``: the same with ``JEEVES_SQLITE_BUSY_TIMEOUT=1``, so writes fail
  with "database is locked" every attempt;
* ``disk-full``: SQLite on an 8 MB tmpfs, filled to the last byte (needs root, mount);
* ``pg-stop``: a throwaway PostgreSQL cluster (``initdb`` on a free port under /tmp,
  never the shared server) is stopped and started again.

Figures: the scheduler's CPU (its own process, % of one core) before, during and
in the 20 s after the outage; its log lines during the outage; its recovery line
and heap size; then a second outage with SIGTERM sent 3 s into it: seconds to exit.
Goals (issue 11, item 9): CPU during and after as at idle, one line per outage plus
one on recovery, one heap entry per planned job, exit well within the shutdown grace.

    .venv/bin/python bench/r14_db_outage.py                       # every scenario
    .venv/bin/python bench/r14_db_outage.py --scenarios pg-stop --outage 4
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import Daemons, print_table, scratch_database, wait_for, write_results

SCENARIOS = ("sqlite-lock", "sqlite-lock-busy1", "disk-full", "pg-stop")
BASELINE_S = 10.0
AFTER_S = 20.0
SIGTERM_AFTER_S = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds down")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child runs one scenario
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.one:
        print(json.dumps(run_scenario(args.one, args.outage)))
        return
    results = []
    for name in args.scenarios.split(","):
        print(f"== {name}", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--one", name, "--outage", str(args.outage)],
            capture_output=True,
            text=True,
        )
        lines = child.stdout.strip().splitlines()
        if child.returncode or not lines:
            print(child.stdout[-2000:], child.stderr[-4000:])
            results.append({"scenario": name, "error": f"exit status {child.returncode}"})
            continue
        results.append(json.loads(lines[-1]))
    show(results, args)


# -- one scenario, in its own process (Django is set up once per process) ------------------


def run_scenario(name: str, outage_s: float) -> dict:
    with (
        outage_kind(name) as (database, env, take_away, give_back),
        scratch_database(database, "r14") as scratch,
    ):
        make_jobs()
        return drill(name, outage_s, {**scratch.env, **env}, scratch, take_away, give_back)


def make_jobs() -> None:
    from runner.models import Job

    for n in range(40):
        Job.objects.create(
            id=f"job-{n:02}",
            name=f"job {n}",
            schedule="* * * * * *" if n < 20 else "*/10 * * * * *",
            script="true",
            source_type="inline",
            missed_fire_policy="latest" if n % 2 else "skip",
        )


def drill(name, outage_s, env, scratch, take_away, give_back) -> dict:
    from django.db import connections

    logs = Path(tempfile.mkdtemp(prefix=f"jeeves-r14-{name}-"))
    daemons = Daemons(env, logs)
    try:
        scheduler = daemons.start("runscheduler", "--no-workers")
        daemons.wait_ready(scheduler)
        connections.close_all()
        baseline = cpu_percent(scheduler.pid, BASELINE_S)
        mark = log_size(scheduler)
        take_away(scratch)
        during = cpu_percent(scheduler.pid, outage_s)
        outage_lines = read_log(scheduler, mark).splitlines()
        give_back(scratch)
        # A write that waited out the outage on the busy timeout saw no error: no line.
        recovered = await_line(scheduler, mark, "answers again", timeout=15)
        heap = _line(scheduler, mark, "the heap holds")
        after = cpu_percent(scheduler.pid, AFTER_S)
        take_away(scratch)
        time.sleep(SIGTERM_AFTER_S)
        stop_sent, stop_sent_wall = time.monotonic(), time.time()
        os.killpg(scheduler.pid, signal.SIGTERM)
        try:
            exit_status = scheduler.wait(timeout=60)
        except subprocess.TimeoutExpired:
            exit_status = "still running after 60 s"
        exit_s = time.monotonic() - stop_sent
        give_back(scratch)
        return {
            "scenario": name,
            "outage_s": outage_s,
            "cpu_baseline_pct": baseline,
            "cpu_during_pct": during,
            "cpu_after_pct": after,
            "log_lines_during": len(outage_lines),
            "first_line_during": outage_lines[0][:200] if outage_lines else None,
            "recovery_line": recovered[:300] if recovered else None,
            "heap_line": heap,
            "sigterm_exit_s": round(exit_s, 2),
            "sigterm_stopped_line_s": stopped_after(scheduler, stop_sent_wall),
            "exit_status": exit_status,
        }
    finally:
        daemons.kill_all()
        with contextlib.suppress(Exception):
            give_back(scratch)


def cpu_percent(pid: int, seconds: float) -> float:
    """The process's CPU time over ``seconds`` of wall time, in % of one core."""
    import psutil

    process = psutil.Process(pid)
    before, began = sum(process.cpu_times()[:2]), time.monotonic()
    time.sleep(seconds)
    used = sum(process.cpu_times()[:2]) - before
    return round(100 * used / (time.monotonic() - began), 1)


def await_line(process, offset: int, needle: str, timeout: float) -> str | None:
    try:
        return wait_for(needle, lambda: _line(process, offset, needle), timeout=timeout)
    except TimeoutError:
        return None


def stopped_after(process, sent: float) -> float | None:
    """Seconds from the SIGTERM to the scheduler's "runscheduler stopped" line."""
    line = _line(process, 0, "runscheduler stopped") and next(
        line for line in read_log(process, 0).splitlines() if "runscheduler stopped" in line
    )
    if not line:
        return None
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return round(stamp.timestamp() - sent, 2)


def log_size(process) -> int:
    return process.log.stat().st_size


def read_log(process, offset: int) -> str:
    with process.log.open("rb") as file:
        file.seek(offset)
        return file.read().decode(errors="replace")


def _line(process, offset: int, needle: str) -> str | None:
    for line in read_log(process, offset).splitlines():
        if needle in line:
            return line.split(": ", 1)[-1] if ": " in line else line
    return None


# -- the ways to take the database away ------------------------------------------------------


@contextlib.contextmanager
def outage_kind(name: str) -> Iterator[tuple]:
    if name == "sqlite-lock":
        yield None, {}, *sqlite_lock()
    elif name == "sqlite-lock-busy1":
        yield None, {"JEEVES_SQLITE_BUSY_TIMEOUT": "1"}, *sqlite_lock()
    elif name == "disk-full":
        with tmpfs(8) as mount:
            tempfile.tempdir = str(mount)  # the scratch data directory goes on it
            yield None, {}, *filled(mount)
    elif name == "pg-stop":
        with throwaway_postgres() as (url, control):
            yield url, {}, lambda scratch: control("stop"), lambda scratch: control("start")
    else:
        raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")


def sqlite_lock():
    held: list[sqlite3.Connection] = []

    def take_away(scratch) -> None:
        path = scratch.url.removeprefix("sqlite:///")
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        connection.execute("BEGIN IMMEDIATE")
        held.append(connection)

    def give_back(scratch) -> None:
        while held:
            connection = held.pop()
            connection.execute("ROLLBACK")
            connection.close()

    return take_away, give_back


@contextlib.contextmanager
def tmpfs(megabytes: int) -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="jeeves-r14-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount)])
    try:
        yield mount
    finally:
        tempfile.tempdir = None
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def filled(mount: Path):
    filler = mount / "filler"

    def take_away(scratch) -> None:
        with filler.open("wb") as file, contextlib.suppress(OSError):
            while True:
                file.write(b"\0" * 65536)
                file.flush()

    def give_back(scratch) -> None:
        filler.unlink(missing_ok=True)

    return take_away, give_back


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[tuple]:
    """A PostgreSQL cluster of our own on a free port; the shared server is never touched."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    data = Path(tempfile.mkdtemp(prefix="jeeves-r14-pg-"))
    shutil.chown(data, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def as_postgres(*command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def control(action: str) -> None:
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
        extra = ["-m", "fast"] if action == "stop" else ["-o", options, "-l", str(data / "log")]
        as_postgres(f"{binaries}/pg_ctl", "-D", str(data / "db"), "-w", *extra, action)

    as_postgres(f"{binaries}/initdb", "-D", str(data / "db"), "-U", "postgres", "--auth=trust")
    control("start")
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres", control
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            control("stop")
        shutil.rmtree(data, ignore_errors=True)


# -- the table -------------------------------------------------------------------------------


def show(results: list[dict], args: argparse.Namespace) -> None:
    print_table(
        ["scenario", "cpu idle %", "cpu during %", "cpu after %", "lines during", "heap",
         "SIGTERM: stopped s", "exit s"],
        [
            [
                r["scenario"], r.get("cpu_baseline_pct"), r.get("cpu_during_pct"),
                r.get("cpu_after_pct"), r.get("log_lines_during"), _heap(r.get("heap_line")),
                r.get("sigterm_stopped_line_s"), r.get("sigterm_exit_s", r.get("error")),
            ]
            for r in results
        ],
    )  # fmt: skip
    for r in results:
        if r.get("recovery_line"):
            print(f"{r['scenario']}: {r['recovery_line']}")
    print("results:", write_results("r14_db_outage", {"outage_s": args.outage, "runs": results}))


def _heap(line: str | None) -> str:
    found = re.search(r"holds (\d+) entries for (\d+) planned", line or "")
    return f"{found[1]}/{found[2]}" if found else "-"


if __name__ == "__main__":
    main()
