"""R3: queue consumers killed with -9 every few seconds; nothing lost, nothing done twice.

    python -m bench.r3_kill_consumers --db sqlite
    python -m bench.r3_kill_consumers --db postgres://postgres@127.0.0.1:5432/jeeves_bench

``--consumers`` processes (8) drain ``--items`` items (20,000), each taking
``--work-ms`` per item under a short ``--lease``. Every ``--kill-every`` seconds
one consumer, chosen at random, is killed with SIGKILL and a fresh one started.
Each consumer appends the id of every item whose ``done`` succeeded to its own
log, so the logs of killed consumers survive them. At the end every item must be
completed, or failed after its attempts; no id may appear in two logs.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.support import (
    child_report,
    database_vendor,
    db_argument,
    print_table,
    scratch_database,
    setup_django,
    spawn,
    write_results,
)

QUEUE = "r3"


def consumer_main(log_dir: str, lease: str, work_ms: float) -> None:
    setup_django()
    from queues.exceptions import ClaimLost
    from queues.status import queue_status
    from runner.client import get_runner_client

    done_log = (Path(log_dir) / f"done-{_pid()}.log").open("a", buffering=1)
    stale_log = (Path(log_dir) / f"stale-{_pid()}.log").open("a", buffering=1)
    print("ready", flush=True)
    with get_runner_client() as jr:
        while True:
            items = jr.dequeue(QUEUE, 10, lease)
            if not items:
                status = queue_status(QUEUE)
                if status["depth"] == 0 and status["claimed"] == 0:
                    break
                time.sleep(0.2)  # claims of killed consumers come back when their lease ends
                continue
            for item in items:
                time.sleep(work_ms / 1000)
                try:
                    jr.done(item.id)
                except ClaimLost:
                    stale_log.write(f"{item.id}\n")
                    continue
                done_log.write(f"{item.id}\n")
    child_report({"exit": "drained"})


def _pid() -> int:
    import os

    return os.getpid()


def fill(items: int) -> set[int]:
    from queues.models import Queue, QueueItem

    queue = Queue.objects.create(id=QUEUE, max_attempts=3)
    QueueItem.objects.bulk_create(
        (QueueItem(queue=queue, payload={"n": n}, max_attempts=3) for n in range(items)),
        batch_size=2000,
    )
    return set(queue.items.values_list("id", flat=True))


def read_ids(log_dir: Path, prefix: str) -> list[int]:
    return [
        int(line)
        for path in log_dir.glob(f"{prefix}-*.log")
        for line in path.read_text().split()
        if line
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_argument(parser)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=1.5, help="seconds between kills")
    parser.add_argument("--lease", default="3s")
    parser.add_argument("--work-ms", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--role", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        consumer_main(args.role[0], args.role[1], float(args.role[2]))
        return

    with scratch_database(args.db, "r3") as scratch:
        drill(args, scratch.url, scratch.directory)


def drill(args: argparse.Namespace, url: str, directory: Path) -> None:
    """Drain the queue while killing a consumer every ``--kill-every`` seconds; report."""
    ids = fill(args.items)
    log_dir = Path(tempfile.mkdtemp(prefix="r3-", dir=directory))
    rng = random.Random(args.seed)
    argv = [str(log_dir), args.lease, str(args.work_ms)]
    module = "bench.r3_kill_consumers"
    alive = [spawn(module, url, argv) for _ in range(args.consumers)]
    kills = 0
    started = time.monotonic()
    next_kill = started + args.kill_every
    try:
        while any(proc.poll() is None for proc in alive):
            if time.monotonic() - started > args.max_seconds:
                sys.exit("R3 did not finish within --max-seconds")
            running = [proc for proc in alive if proc.poll() is None]
            if time.monotonic() >= next_kill and len(running) == len(alive):
                victim = rng.choice(running)
                victim.kill()
                victim.wait()
                alive[alive.index(victim)] = spawn(module, url, argv)
                kills += 1
                next_kill = time.monotonic() + args.kill_every
            time.sleep(0.05)
    finally:
        for proc in alive:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    report(args, url, ids, log_dir, kills, elapsed)


def report(args, url: str, ids: set[int], log_dir: Path, kills: int, elapsed: float) -> None:
    from queues.models import QueueItem

    statuses = Counter(QueueItem.objects.values_list("status", flat=True))
    failed_early = QueueItem.objects.filter(status="failed", attempts__lt=3).count()
    logged = Counter(read_ids(log_dir, "done"))
    completed = set(QueueItem.objects.filter(status="completed").values_list("id", flat=True))
    twice = sum(1 for n in logged.values() if n > 1)
    logged_not_completed = len(set(logged) - completed)
    unlogged = len(completed - set(logged))
    lost = statuses["pending"] + statuses["claimed"] + len(ids) - sum(statuses.values())
    ok = twice == 0 and lost == 0 and logged_not_completed == 0 and failed_early == 0
    rows = [
        ["items", len(ids)],
        ["consumers killed (-9)", kills],
        ["completed", statuses["completed"]],
        ["failed after 3 attempts", statuses["failed"]],
        ["lost (pending/claimed/missing at end)", lost],
        ["completed twice", twice],
        ["done refused as stale (ClaimLost)", len(read_ids(log_dir, "stale"))],
        ["completed, log line lost to the kill", unlogged],
        ["seconds", elapsed],
    ]
    vendor = database_vendor()
    print(f"R3 on {vendor}: lease {args.lease}, a kill every {args.kill_every}s")
    print_table(["", "count"], rows)
    print("PASS" if ok else "FAIL")
    path = write_results(
        f"r3-{vendor}",
        {
            "drill": "R3",
            "database": vendor,
            "passed": ok,
            "settings": {k: v for k, v in vars(args).items() if k not in ("db", "role")},
            **{name: value for name, value in rows},
        },
    )
    print(f"wrote {path}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
