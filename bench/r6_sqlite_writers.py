"""R6: many processes writing state and queues on SQLite at once; no lock error, no lost write.

    python -m bench.r6_sqlite_writers --processes 16 --seconds 60

Each process loops for ``--seconds``: set a value, add a collection item,
enqueue an item to a shared queue, claim one and complete it. Any exception
that reaches the caller is recorded. Afterwards every process's last value, its
item count and every id its enqueues returned are checked against the database.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.support import (
    Group,
    child_report,
    child_start,
    database_vendor,
    db_argument,
    print_table,
    scratch_database,
    summary_ms,
    write_results,
)

QUEUE = "r6"


def writer_main(writer: str, seconds: float) -> None:
    child_start()
    from runner.client import get_runner_client

    rounds, errors, enqueued, completed, latencies = 0, [], [], [], []
    deadline = time.monotonic() + seconds
    with get_runner_client() as jr:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                jr.set_state("r6", f"w{writer}", rounds + 1)
                jr.set_item("r6", f"seen-{writer}", f"i{rounds}", {"n": rounds})
                enqueued.append(jr.enqueue(QUEUE, {"writer": writer, "n": rounds}))
                for item in jr.dequeue(QUEUE, 1, "10m"):
                    jr.done(item.id)
                    completed.append(item.id)
                rounds += 1
            except Exception as exc:  # the drill counts whatever reaches a caller
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)
    child_report(
        {
            "rounds": rounds,
            "errors": errors[:20],
            "error_count": len(errors),
            "enqueued": enqueued,
            "completed": completed,
            "latency": summary_ms(latencies),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_argument(parser)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--role", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        writer_main(args.role[0], float(args.role[1]))
        return

    with scratch_database(args.db, "r6") as scratch:
        argvs = [[str(n), str(args.seconds)] for n in range(args.processes)]
        with Group("bench.r6_sqlite_writers", scratch.url, argvs) as group:
            group.start()
            results = group.results(timeout=args.seconds + 120)
        check(args, results)


def check(args: argparse.Namespace, results: list[dict]) -> None:
    """Compare what every writer reported with the database; print and save the verdict."""
    from queues.models import QueueItem
    from runner.client import get_runner_client

    lost_values = lost_items = 0
    with get_runner_client() as jr:
        for n, result in enumerate(results):
            lost_values += jr.get_state("r6", f"w{n}") != result["rounds"]
            lost_items += result["rounds"] - jr.count_items("r6", f"seen-{n}")
    enqueued = {i for r in results for i in r["enqueued"]}
    stored = set(QueueItem.objects.filter(queue_id=QUEUE).values_list("id", flat=True))
    completed = [i for r in results for i in r["completed"]]
    lost_queue = len(enqueued - stored)
    double = len(completed) - len(set(completed))
    errors = sum(r["error_count"] for r in results)
    locked = sum("locked" in e for r in results for e in r["errors"])
    rounds = sum(r["rounds"] for r in results)
    ok = errors == 0 and lost_values == 0 and lost_items == 0 and lost_queue == 0 and not double
    p99_ms = max(r["latency"]["p99_ms"] or 0.0 for r in results)
    rows = [
        ["processes", args.processes],
        ["seconds", args.seconds],
        ["rounds (set_state, set_item, enqueue, dequeue, done)", rounds],
        ["rounds/s", rounds / args.seconds],
        ["errors reaching a caller", errors],
        ['... of them "database is locked"', locked],
        ["values lost", lost_values],
        ["collection items lost", lost_items],
        ["queue items lost", lost_queue],
        ["items completed twice", double],
        ["worst per-process p99 round (ms)", p99_ms],
    ]
    vendor = database_vendor()
    print(f"R6 on {vendor}")
    print_table(["", "value"], rows)
    print("PASS" if ok else "FAIL")
    path = write_results(
        f"r6-{vendor}",
        {"drill": "R6", "database": vendor, "passed": ok, **{k: v for k, v in rows}},
    )
    print(f"wrote {path}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
