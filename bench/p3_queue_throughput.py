"""P3: queue throughput of the script client against a minimal raw-SQL claim loop.

    python -m bench.p3_queue_throughput --db sqlite --items 100000
    python -m bench.p3_queue_throughput --db postgres://postgres@127.0.0.1:5432/jeeves_bench

For each claim size (``--claims``, default 1 and 50) and each arm, the queue is
filled with ``--items`` items and ``--consumers`` processes (default 4) drain it:
claim a batch, then mark each item done. The client arm uses
``runner.client``; the raw arm the driver alone (sqlite3 with BEGIN IMMEDIATE /
psycopg with FOR UPDATE SKIP LOCKED), with the same claim token and lease
columns. Both arms are checked: every item completed, by exactly one consumer,
on its first attempt.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from bench.support import (
    Group,
    child_report,
    child_start,
    database_vendor,
    db_argument,
    print_table,
    scratch_database,
    write_results,
)

QUEUE = "bench"
LEASE = timedelta(minutes=10)


# -- consumers (children) ----------------------------------------------------------------------


def client_consumer(count: int) -> list[int]:
    from runner.client import get_runner_client

    done = []
    with get_runner_client() as jr:
        while items := jr.dequeue(QUEUE, count, "10m"):
            for item in items:
                jr.done(item.id)
                done.append(item.id)
    return done


def raw_sqlite_consumer(path: str, count: int) -> list[int]:
    import sqlite3

    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    select = (
        "SELECT id, payload FROM queue_items WHERE queue_id = ? AND status = 'pending' "
        "ORDER BY priority DESC, id LIMIT ?"
    )
    finish = (
        "UPDATE queue_items SET status = 'completed', completed_at = ?, claim_token = NULL, "
        "lease_expires_at = NULL WHERE id = ? AND status = 'claimed' AND claim_token = ?"
    )
    done = []
    while True:
        now = datetime.now(UTC).replace(tzinfo=None)
        token = uuid.uuid4().hex
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(select, (QUEUE, count)).fetchall()
        if rows:
            marks = ",".join("?" * len(rows))
            conn.execute(
                "UPDATE queue_items SET status = 'claimed', claim_token = ?, claimed_at = ?, "
                f"lease_expires_at = ?, attempts = attempts + 1 WHERE id IN ({marks}) "
                "AND status = 'pending'",
                (token, str(now), str(now + LEASE), *[row[0] for row in rows]),
            )
        conn.execute("COMMIT")
        if not rows:
            return done
        for item_id, payload in rows:
            json.loads(payload)
            stamp = str(datetime.now(UTC).replace(tzinfo=None))
            if conn.execute(finish, (stamp, item_id, token)).rowcount != 1:
                raise SystemExit(f"raw sqlite lost item {item_id}")
            done.append(item_id)


def raw_postgres_consumer(url: str, count: int) -> list[int]:
    import psycopg

    select = (
        "SELECT id, payload FROM queue_items WHERE queue_id = %s AND status = 'pending' "
        "ORDER BY priority DESC, id LIMIT %s FOR UPDATE SKIP LOCKED"
    )
    claim = (
        "UPDATE queue_items SET status = 'claimed', claim_token = %s, claimed_at = %s, "
        "lease_expires_at = %s, attempts = attempts + 1 WHERE id = ANY(%s) AND status = 'pending'"
    )
    finish = (
        "UPDATE queue_items SET status = 'completed', completed_at = %s, claim_token = NULL, "
        "lease_expires_at = NULL WHERE id = %s AND status = 'claimed' AND claim_token = %s"
    )
    done = []
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            now = datetime.now(UTC)
            token = uuid.uuid4().hex
            with conn.transaction():
                rows = conn.execute(select, (QUEUE, count)).fetchall()
                if rows:
                    ids = [row[0] for row in rows]
                    conn.execute(claim, (token, now, now + LEASE, ids))
            if not rows:
                return done
            for item_id, _payload in rows:  # psycopg has decoded the jsonb already
                if conn.execute(finish, (datetime.now(UTC), item_id, token)).rowcount != 1:
                    raise SystemExit(f"raw psycopg lost item {item_id}")
                done.append(item_id)


def consumer_main(arm: str, count: int) -> None:
    child_start()
    import os

    url = os.environ["DATABASE_URL"]
    if arm == "client":
        done = client_consumer(count)
    elif database_vendor() == "sqlite":
        done = raw_sqlite_consumer(urlsplit(url).path[1:], count)
    else:
        done = raw_postgres_consumer(url, count)
    child_report({"done": done})


# -- the run (parent) --------------------------------------------------------------------------


def fill(items: int) -> set[int]:
    from queues.models import Queue, QueueItem

    QueueItem.objects.all().delete()
    queue, _ = Queue.objects.get_or_create(id=QUEUE)
    QueueItem.objects.bulk_create(
        (QueueItem(queue=queue, payload={"n": n, "body": "x" * 40}) for n in range(items)),
        batch_size=2000,
    )
    return set(queue.items.values_list("id", flat=True))


def drain(url: str, arm: str, count: int, consumers: int, ids: set[int]) -> dict:
    from queues.models import QueueItem

    with Group("bench.p3_queue_throughput", url, [[arm, str(count)]] * consumers) as group:
        started = group.start()
        results = group.results(timeout=3600)
        elapsed = time.perf_counter() - started
    done = [item_id for result in results for item_id in result["done"]]
    double = len(done) - len(set(done))
    lost = len(ids - set(done))
    completed_once = QueueItem.objects.filter(status="completed", attempts=1).count()
    if double or lost or completed_once != len(ids):
        raise SystemExit(f"{arm}: {double} double claims, {lost} lost, {completed_once} completed")
    return {
        "seconds": elapsed,
        "items_per_s": len(ids) / elapsed,
        "double_claims": double,
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_argument(parser)
    parser.add_argument("--items", type=int, default=20_000, help="items per run (P3 names 100k)")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--claims", default="1,50", help="comma-separated claim sizes")
    parser.add_argument("--role", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        consumer_main(args.role[0], int(args.role[1]))
        return

    with scratch_database(args.db, "p3") as scratch:
        measure(args, scratch.url)


def measure(args: argparse.Namespace, url: str) -> None:
    """Fill and drain the queue for every claim size and arm; print and save the figures."""
    vendor = database_vendor()
    rows, runs = [], []
    for count in (int(c) for c in args.claims.split(",")):
        measured = {}
        for arm in ("client", "raw"):
            ids = fill(args.items)
            measured[arm] = drain(url, arm, count, args.consumers, ids)
        ratio = measured["client"]["items_per_s"] / measured["raw"]["items_per_s"]
        runs.append({"claim": count, **measured, "ratio": ratio})
        rows.append(
            [count, measured["client"]["items_per_s"], measured["raw"]["items_per_s"], ratio, 0, 0]
        )
    print(f"P3 queue throughput on {vendor}: {args.items} items, {args.consumers} consumers")
    print_table(["claim", "client items/s", "raw items/s", "ratio", "double", "lost"], rows)
    print("goal: ratio >= 0.5, 0 double claims, 0 lost")
    path = write_results(
        f"p3-{vendor}",
        {
            "benchmark": "P3",
            "database": vendor,
            "items": args.items,
            "consumers": args.consumers,
            "runs": runs,
            "goal": 0.5,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
