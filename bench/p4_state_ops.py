"""P4: state set/get through the script client against raw driver statements doing the same.

    python -m bench.p4_state_ops --db sqlite --ops 100000
    python -m bench.p4_state_ops --db postgres://postgres@127.0.0.1:5432/jeeves_bench

One process; ``--ops`` operations, half ``set_state`` and half ``get_state``,
alternating over ``--keys`` keys with small JSON values. The raw arm uses the
driver directly (sqlite3 with the same pragmas / psycopg in autocommit) with one
upsert and one select per pair, as the client does. Arms alternate ``--rounds``
times; the table shows the median round, by wall time and by this process's CPU
time (SQLite runs inside the process, so on a busy machine the CPU ratio is the
steadier one). Goal (issue 12): client/raw >= 0.7.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bench.support import database_vendor, db_argument, print_table, scratch_database, write_results

NAMESPACE = "bench"


GOAL = 0.7


def timed(arm, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) that ``arm(*args)`` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    arm(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def client_arm(pairs: int, keys: int) -> float:
    from runner.client import get_runner_client

    with get_runner_client() as jr:
        started = time.perf_counter()
        for n in range(pairs):
            key = f"k{n % keys}"
            jr.set_state(NAMESPACE, key, {"n": n, "tag": "x"})
            if jr.get_state(NAMESPACE, key)["n"] != n:
                raise SystemExit("client read back the wrong value")
        return time.perf_counter() - started


def raw_sqlite_arm(path: str, pairs: int, keys: int) -> float:
    import sqlite3

    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    upsert = (
        "INSERT INTO state (namespace, key, value, expires_at, created_at, updated_at) "
        "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET "
        "value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at"
    )
    select = (
        "SELECT value FROM state WHERE namespace = ? AND key = ? "
        "AND (expires_at IS NULL OR expires_at > ?)"
    )
    started = time.perf_counter()
    for n in range(pairs):
        key = f"k{n % keys}"
        stamp = str(datetime.now(UTC).replace(tzinfo=None))
        conn.execute(upsert, (NAMESPACE, key, json.dumps({"n": n, "tag": "x"}), stamp, stamp))
        row = conn.execute(select, (NAMESPACE, key, stamp)).fetchone()
        if json.loads(row[0])["n"] != n:
            raise SystemExit("raw sqlite read back the wrong value")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def raw_postgres_arm(url: str, pairs: int, keys: int) -> float:
    import psycopg
    from psycopg.types.json import Jsonb

    upsert = (
        "INSERT INTO state (namespace, key, value, expires_at, created_at, updated_at) "
        "VALUES (%s, %s, %s, NULL, %s, %s) ON CONFLICT (namespace, key) DO UPDATE SET "
        "value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at"
    )
    select = (
        "SELECT value FROM state WHERE namespace = %s AND key = %s "
        "AND (expires_at IS NULL OR expires_at > %s)"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        for n in range(pairs):
            key = f"k{n % keys}"
            stamp = datetime.now(UTC)
            conn.execute(upsert, (NAMESPACE, key, Jsonb({"n": n, "tag": "x"}), stamp, stamp))
            row = conn.execute(select, (NAMESPACE, key, stamp)).fetchone()
            if row[0]["n"] != n:
                raise SystemExit("raw psycopg read back the wrong value")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_argument(parser)
    parser.add_argument("--ops", type=int, default=100_000, help="set + get operations per arm")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with scratch_database(args.db, "p4") as scratch:
        measure(args, scratch.url)


def measure(args: argparse.Namespace, url: str) -> None:
    """Alternate the arms ``--rounds`` times; print and save the median round."""
    vendor = database_vendor()
    pairs = args.ops // 2
    client_times, raw_times = [], []
    for _ in range(args.rounds):
        client_times.append(timed(client_arm, pairs, args.keys))
        if vendor == "sqlite":
            raw_times.append(timed(raw_sqlite_arm, urlsplit(url).path[1:], pairs, args.keys))
        else:
            raw_times.append(timed(raw_postgres_arm, url, pairs, args.keys))

    client_ops = 2 * pairs / statistics.median(t[0] for t in client_times)
    raw_ops = 2 * pairs / statistics.median(t[0] for t in raw_times)
    ratio = client_ops / raw_ops
    client_cpu = statistics.median(t[1] for t in client_times) / (2 * pairs)
    raw_cpu = statistics.median(t[1] for t in raw_times) / (2 * pairs)
    cpu_ratio = raw_cpu / client_cpu
    print(f"P4 state set/get on {vendor}: {2 * pairs} ops per arm, median of {args.rounds}")
    print_table(
        ["arm", "ops/s", "us/op", "CPU us/op"],
        [
            ["client API", client_ops, 1e6 / client_ops, 1e6 * client_cpu],
            ["raw driver", raw_ops, 1e6 / raw_ops, 1e6 * raw_cpu],
        ],
    )
    print(f"ratio client/raw = {ratio:.2f} by wall time, {cpu_ratio:.2f} by CPU (goal >= {GOAL})")
    path = write_results(
        f"p4-{vendor}",
        {
            "benchmark": "P4",
            "database": vendor,
            "ops_per_arm": 2 * pairs,
            "keys": args.keys,
            "rounds": args.rounds,
            "client_seconds": client_times,
            "raw_seconds": raw_times,
            "client_ops_per_s": client_ops,
            "raw_ops_per_s": raw_ops,
            "ratio": ratio,
            "cpu_ratio": cpu_ratio,
            "goal": GOAL,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
