"""P1 (fire precision): N jobs on an every-second cron; how late does each script start?

Each peer launches bench/p1_probe.sh, whose first action appends
``<job> <time> <scheduled> <run id>`` to a file. Lag is that time minus the
scheduled instant: the instant the peer passed (django-q2's intended date), the
run's ``scheduled_for`` (jeeves-runner, looked up by JR_RUN_ID), or else the
whole second before the time (APScheduler; valid while lag < 1 s). Over a window
of ``--duration`` seconds that starts ``--warmup`` seconds after the peer, every
(job, cron instant) should run once: missing ones are ``missed``, extra ones
``duplicated``.

Modes, run one after another, each in its own process group, stopped with SIGTERM
and killed if it lingers:
  apscheduler  APScheduler 3.11 cron trigger (second='*'), Popen on a thread pool
  q2           a django-q2 Schedule, CRON '* * * * * *' (its scheduler looks every ~30 s)
  q2-minute    a django-q2 Schedule, CRON '* * * * *' (the granularity it can keep)
  jeeves       manage.py runscheduler, jobs in the jobs table (SQLite in a temp data dir)

    .venv/bin/python bench/p1_fire_precision.py                       # 100 jobs, 60 s
    .venv/bin/python bench/p1_fire_precision.py --jobs 10 --modes apscheduler,jeeves
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.profile_breakdown import breakdown
from bench.support import (
    ROOT,
    drop_postgres,
    fresh_postgres,
    print_table,
    summary_ms,
    write_results,
)

BENCH = ROOT / "bench"
PROBE = BENCH / "p1_probe.sh"
MODES = ("apscheduler", "q2", "q2-minute", "jeeves")
STOP_TIMEOUT_S = 15
SETUP_TIMEOUT_S = 120
# django-q2 turns schedules into tasks about every 30 s: give a late fire time to land.
Q2_GRACE_S = 35


@dataclass
class Peer:
    """How one mode is prepared, started and stopped."""

    mode: str
    cron: str = "second"
    grace_s: float = 3.0
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cpu_s: dict[int, float] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--duration", type=int, default=60, help="measured seconds per mode")
    parser.add_argument("--warmup", type=int, default=5, help="seconds ignored after start")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {MODES}")
    parser.add_argument("--q2-workers", type=int, default=4, help="django-q2 worker processes")
    parser.add_argument(
        "--jeeves-concurrency",
        type=int,
        default=0,
        help="JEEVES_MAX_CONCURRENCY for runscheduler (0: the runner's default)",
    )
    parser.add_argument(
        "--cron",
        choices=["second", "minute"],
        default="second",
        help="jeeves and apscheduler: every second, or every minute (a top-of-the-minute burst)",
    )
    parser.add_argument(
        "--db",
        default="sqlite",
        help="jeeves: 'sqlite' or a postgres:// server URL (a scratch database, dropped after)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="jeeves: sample runscheduler and its workers with py-spy over the window; the "
        "collapsed stacks go to bench/results/ and a breakdown is printed",
    )
    parser.add_argument(
        "--gil",
        action="store_true",
        help="with --profile: sample only threads holding the GIL (py-spy --gil), so waiting "
        "threads are not counted where py-spy cannot tell them idle",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    return args


def main() -> None:
    args = parse_args()
    results: dict[str, dict[str, Any]] = {}
    for mode in args.modes:
        print(f"== {mode}: {args.jobs} jobs, {args.duration} s", flush=True)
        results[mode] = run_mode(mode, args)
        if "skipped" in results[mode]:
            print(f"   skipped: {results[mode]['skipped']}", flush=True)
    show(results, args)


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"jeeves-p1-{mode}-"))
    postgres = mode == "jeeves" and args.db != "sqlite"
    database = f"jeeves_bench_p1_{os.getpid()}"
    try:
        if postgres:
            args.database_url = fresh_postgres(args.db, database)
        peer = prepare(mode, args, work)
        if isinstance(peer, str):
            return {"skipped": peer}
        out = work / "fires.txt"
        command = start_command(peer, args, out)
        window = run_peer(command, peer, args, work)
        extra = collect_jeeves(peer, window) if mode == "jeeves" else {}
        return measure(out, window, args.jobs, peer, extra)
    finally:
        kill_leftovers(work)
        if postgres:
            drop_postgres(args.db, database)
        if args.keep:
            print(f"   kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def prepare(mode: str, args: argparse.Namespace, work: Path) -> Peer | str:
    """Set up the peer's database; return it, or why the mode cannot run here."""
    out = str(work / "fires.txt")
    env = {"JEEVES_DATA_DIR": str(work / "data"), "PYTHONPATH": f"{BENCH}:{ROOT}"}
    if mode == "apscheduler":
        if args.cron == "minute":
            return "--cron minute is measured for jeeves only"
        notes = [
            f"thread pool of {args.jobs}, Popen + wait per fire, APScheduler defaults otherwise",
            "lag from the whole second before the probe's time",
        ]
        return Peer(mode, notes=notes)
    if mode.startswith("q2"):
        cron = "minute" if mode == "q2-minute" else "second"
        env |= {
            "DJANGO_SETTINGS_MODULE": "q2_bench_settings",
            "JEEVES_MAX_CONCURRENCY": str(args.q2_workers),
        }
        setup = ["setup-q2", "--jobs", str(args.jobs), "--script", str(PROBE), "--out", out]
        django_side([*setup, "--cron", cron], env)
        notes = [
            "django-q2's scheduler turns due schedules into tasks only every ~30 s "
            "(guard loop); with catch_up off it fires each schedule once per pass",
            f"ORM broker on SQLite, {args.q2_workers} workers, poll 0.05 s",
        ]
        return Peer(mode, cron=cron, grace_s=Q2_GRACE_S, env=env, notes=notes)
    if not has_runscheduler(env):
        return "manage.py runscheduler does not exist in this checkout"
    concurrency = "default"
    if args.jeeves_concurrency:
        env["JEEVES_MAX_CONCURRENCY"] = concurrency = str(args.jeeves_concurrency)
    database = "SQLite"
    if args.db != "sqlite":
        env |= {"DATABASE_URL": args.database_url, "DJANGO_SECRET_KEY": "bench-only"}
        database = "PostgreSQL"
    env["JEEVES_Q_NAME"] = f"p1-{os.getpid()}"
    setup = ["setup-jeeves", "--jobs", str(args.jobs), "--script", str(PROBE), "--out", out]
    django_side([*setup, "--cron", args.cron], env)
    notes = [f"{database}, max concurrency {concurrency}, overlap skip (default)"]
    return Peer(mode, cron=args.cron, env=env, notes=notes)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JEEVES_CONFIG")}
    return env | extra


def django_side(argv: list[str], env: dict[str, str]) -> str:
    command = [sys.executable, str(BENCH / "p1_django.py"), *argv]
    done = subprocess.run(
        command, env=base_env(env), capture_output=True, text=True, timeout=SETUP_TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:1])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def has_runscheduler(env: dict[str, str]) -> bool:
    done = subprocess.run(
        [sys.executable, "manage.py", "help", "runscheduler"],
        cwd=ROOT,
        env=base_env(env),
        capture_output=True,
        timeout=SETUP_TIMEOUT_S,
    )
    return done.returncode == 0


def start_command(peer: Peer, args: argparse.Namespace, out: Path) -> list[str]:
    if peer.mode == "apscheduler":
        lifetime = args.warmup + args.duration + peer.grace_s + 5
        return [
            sys.executable, str(BENCH / "p1_apscheduler.py"), "--jobs", str(args.jobs),
            "--script", str(PROBE), "--out", str(out), "--max-seconds", str(lifetime),
        ]  # fmt: skip
    if peer.mode.startswith("q2"):
        return [sys.executable, "manage.py", "qcluster"]
    return [sys.executable, "manage.py", "runscheduler"]


def run_peer(
    command: list[str], peer: Peer, args: argparse.Namespace, work: Path
) -> tuple[int, int]:
    """Run the peer through warm-up, window and grace; return the window [start, end)."""
    log = (work / "peer.log").open("wb")
    child = subprocess.Popen(
        command, cwd=ROOT, env=base_env(peer.env), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    spy = None
    try:
        start = math.ceil(time.time()) + args.warmup
        if peer.cron == "minute":
            start = math.ceil(start / 60) * 60
        end = start + args.duration
        deadline = end + peer.grace_s
        while args.profile and peer.mode == "jeeves" and spy is None and time.time() < start:
            time.sleep(0.1)
        if args.profile and peer.mode == "jeeves":
            spy = start_profiler(child.pid, end - time.time(), work, args.gil)
        while time.time() < start:
            time.sleep(0.05)
        cpu_before = tree_cpu(child.pid)
        cpu_measured = False
        while time.time() < deadline:
            if not cpu_measured and time.time() >= end:
                peer.cpu_s = {
                    pid: used - cpu_before.get(pid, 0.0)
                    for pid, used in tree_cpu(child.pid).items()
                }
                cpu_measured = True
            if child.poll() is not None:
                raise RuntimeError(f"{peer.mode} exited early ({child.returncode}):\n{tail(work)}")
            time.sleep(0.2)
        stop(child, peer)
        if spy is not None:
            peer.notes.append(finish_profiler(spy, work))
        return start, end
    finally:
        kill_group(child)
        log.close()


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``pid`` and each Python process below it, by pid."""
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
                used[process.pid] = times.user + times.system
    return used


def start_profiler(pid: int, seconds: float, work: Path, gil: bool = False) -> subprocess.Popen:
    """py-spy over ``pid`` and its children for ``seconds``: collapsed stacks, idle excluded."""
    command = [
        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
        "--subprocesses", "--rate", "100", "--format", "raw", "--nonblocking",
        "--duration", str(max(1, int(seconds))), "--output", str(work / "profile.txt"),
        *(["--gil"] if gil else []),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish_profiler(spy: subprocess.Popen, work: Path) -> str:
    try:
        spy.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        spy.kill()
    source = work / "profile.txt"
    if not source.exists():
        return "py-spy wrote no profile (is ptrace allowed?)"
    target = ROOT / "bench" / "results" / f"p1_profile_{time.strftime('%Y%m%dT%H%M%S')}.txt"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(source, target)
    print(breakdown(target.read_text()), flush=True)
    return f"profile: {target.relative_to(ROOT)} (bench/profile_breakdown.py reads it)"


def stop(child: subprocess.Popen, peer: Peer) -> None:
    """SIGTERM, as a supervisor would, then wait; the caller kills what is left."""
    if peer.mode.startswith("q2"):
        # Stock qcluster can hang when the whole group gets SIGTERM (django-q2-notes):
        # signal only its main process, like systemd's KillMode=mixed.
        child.send_signal(signal.SIGTERM)
    else:
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        peer.notes.append(f"did not exit within {STOP_TIMEOUT_S} s of SIGTERM; killed")


def kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def kill_leftovers(work: Path) -> None:
    """Kill any process still naming this mode's directory (a probe in its own session)."""
    marker = str(work)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid != os.getpid() and any(marker in arg for arg in proc.info["cmdline"] or []):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def tail(work: Path, lines: int = 30) -> str:
    text = (work / "peer.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def collect_jeeves(peer: Peer, window: tuple[int, int]) -> dict[str, Any]:
    since, until = (str(t) for t in window)
    return json.loads(django_side(["collect-jeeves", "--since", since, "--until", until], peer.env))


def expected_instants(start: int, end: int, cron: str) -> list[int]:
    step = 60 if cron == "minute" else 1
    first = math.ceil(start / step) * step
    return list(range(first, end, step))


def measure(
    out: Path, window: tuple[int, int], jobs: int, peer: Peer, extra: dict[str, Any]
) -> dict[str, Any]:
    """Lag, missed and duplicated (job, instant) pairs inside the window."""
    start, end = window
    scheduled_by_run = extra.get("runs", {})
    fires: Counter[tuple[str, int]] = Counter()
    lags: list[float] = []
    lines = out.read_text().splitlines() if out.exists() else []
    for line in lines:
        job, at, scheduled, run_id = line.split()
        t = float(at.replace(",", "."))
        if scheduled != "-":
            instant = float(scheduled)
        elif run_id in scheduled_by_run:
            instant = scheduled_by_run[run_id]
        else:
            instant = math.floor(t)
        if start <= instant < end:
            fires[(job, round(instant))] += 1
            lags.append(t - instant)
    instants = expected_instants(start, end, peer.cron)
    expected = {(f"p1-{n:03d}", i) for n in range(jobs) for i in instants}
    result = {
        "cron": peer.cron,
        "window": [start, end],
        "expected": len(expected),
        "executed": sum(fires.values()),
        "missed": len(expected - set(fires)),
        "duplicated": sum(count - 1 for count in fires.values()),
        "lag": summary_ms(lags),
        "notes": peer.notes,
    }
    if extra:
        result["run_statuses"] = extra.get("statuses", {})
    if peer.cpu_s:
        total = sum(peer.cpu_s.values())
        result["cpu_s_by_process"] = sorted(peer.cpu_s.values(), reverse=True)
        result["cpu_ms_per_run"] = total * 1000 / max(1, result["executed"])
        peer.notes.append(
            f"CPU of its own processes over the window: {total:.1f} s "
            f"({result['cpu_ms_per_run']:.1f} ms a run; by process, s: "
            f"{', '.join(f'{s:.1f}' for s in result['cpu_s_by_process'])})"
        )
    return result


def show(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    base = results.get("apscheduler", {}).get("lag", {})

    def ratio(lag: dict[str, Any], key: str) -> str | None:
        if not base.get(key) or lag.get(key) is None:
            return None
        return f"{lag[key] / base[key]:.2f}"

    rows = []
    for mode, r in results.items():
        if "skipped" in r:
            rows.append([mode, "-", "skipped", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        lag = r["lag"]
        rows.append(
            [mode, r["cron"], r["expected"], r["executed"], r["missed"], r["duplicated"],
             lag["p50_ms"], lag["p99_ms"], lag["max_ms"], ratio(lag, "p50_ms"),
             ratio(lag, "p99_ms")]
        )  # fmt: skip
    print()
    print(f"P1: {args.jobs} jobs, {args.duration} s window, lag in ms")
    print_table(
        ["mode", "cron", "expected", "executed", "missed", "dup", "p50", "p99", "max",
         "p50/aps", "p99/aps"],
        rows,
    )  # fmt: skip
    for mode, r in results.items():
        for note in r.get("notes", []) + ([r["skipped"]] if "skipped" in r else []):
            print(f"  {mode}: {note}")
    path = write_results("p1_fire_precision", {"settings": vars(args), "results": results})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
