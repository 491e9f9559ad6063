"""C1 (console pages at scale): each console page's server time with 10,000 jobs and
1,000,000 runs.

Fills a scratch database in bulk SQL (``INSERT ... SELECT`` over a generated series,
as P5 does): ``--jobs`` jobs on a mix of schedules (five- and six-field crons in a few
zones, recurrence objects, some disabled), ``--runs`` runs spread over the last
``--days`` days (a tenth failed, a few running), ``--queues`` queues holding
``--items`` items. Then a logged-in superuser asks for each page through Django's
test client in this process, ``--repeat`` times after one warm-up, and the figures
are the server's time for the whole request (query, render) and its query count.
Goal (issue 15): every page < 300 ms, no query per row.

    .venv/bin/python bench/c1_console_pages.py                        # SQLite, 10k jobs, 1M runs
    .venv/bin/python bench/c1_console_pages.py --db both
    .venv/bin/python bench/c1_console_pages.py --jobs 1000 --runs 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import db_choice_arguments, on_each_db, print_table, write_results

GOAL_MS = 300.0
# Schedules the jobs cycle through: a realistic spread of distinct expressions.
CRONS = [f"{m} {h} * * *" for m in (0, 15, 30, 45) for h in range(24)]  # 96 daily times
CRONS += [f"*/{n} * * * *" for n in (1, 2, 5, 10, 15, 30)]
CRONS += [f"{s} */{n} * * * *" for s in (0, 30) for n in (1, 5)]  # six fields
CRONS += ["30 9 * * 1-5", "0 3 * * 0", "0 0 1 * *", "@daily", "@hourly"]
RECURRENCES = [
    '{"freq":"minutely","interval":11}',
    '{"freq":"daily","byhour":7,"byminute":15,"timezone":"America/Chicago"}',
]
ZONES = ["", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_choice_arguments(parser)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30, help="the runs span this many days")
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page")
    parser.add_argument(
        "--distinct-schedules",
        action="store_true",
        help="give every job its own expression (the worst case for next-fire work)",
    )
    return parser.parse_args()


def main() -> None:
    on_each_db(parse_args(), __file__, "c1", bench)


def bench(args: argparse.Namespace) -> None:
    from django.db import connection

    print(f"[{connection.vendor}] filling {args.jobs:,} jobs, {args.runs:,} runs ...", flush=True)
    started = time.monotonic()
    fill(args)
    fill_s = time.monotonic() - started
    print(f"[{connection.vendor}] filled in {fill_s:.1f} s; timing pages ...", flush=True)
    rows = [time_page(name, path, args.repeat) for name, path in pages()]
    report(args, connection.vendor, fill_s, rows)


def fill(args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model

    from queues.models import Queue
    from runner.models import Job

    jobs = []
    for i in range(args.jobs):
        if args.distinct_schedules:
            schedule = f"{i % 60} {(i // 60) % 24} {1 + (i // 1440) % 28} * *"
        elif i % 50 == 7:
            schedule = RECURRENCES[i % len(RECURRENCES)]
        else:
            schedule = CRONS[i % len(CRONS)]
        jobs.append(
            Job(
                id=f"c1-{i:05d}",
                name=f"Console job {i}",
                schedule=schedule,
                timezone=ZONES[i % len(ZONES)],
                enabled=i % 20 != 0,
                script="true",
                source_type="inline",
            )
        )
    Job.objects.bulk_create(jobs, batch_size=2000)
    insert_runs(args.runs, args.jobs, args.days)
    Queue.objects.bulk_create(
        Queue(id=f"c1-q{n:03d}", name=f"queue {n}") for n in range(args.queues)
    )
    insert_items(args.items, args.queues)
    analyze()
    get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")


def insert_runs(count: int, jobs: int, days: int) -> None:
    """One INSERT ... SELECT: run n belongs to job n % jobs, newest last, ending now."""
    from django.db import connection, transaction
    from django.utils import timezone

    step_ms = max(1, days * 86_400_000 // max(count, 1))
    start = timezone.now() - timezone.timedelta(milliseconds=step_ms * count)
    columns = (
        'job_id, status, "trigger", scheduled_for, created_at, started_at, finished_at, '
        "worker, duration_ms, exit_code, stdout, stderr, stdout_bytes, stderr_bytes, "
        "output_truncated, error, notes"
    )
    status = (
        "CASE WHEN n >= %s THEN 'running' WHEN n %% 10 = 3 THEN 'error' "
        "WHEN n %% 97 = 5 THEN 'skipped' ELSE 'ok' END"
    )
    if connection.vendor == "sqlite":
        seconds = f"'+' || (n * {step_ms} / 1000.0) || ' seconds'"
        at = f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, {seconds})"
        sql = (
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < %s) "
            f"INSERT INTO runs ({columns}) SELECT printf('c1-%%05d', n %% %s), {status}, "
            f"'schedule', {at}, {at}, {at}, {at}, 'bench', 200 + (n * 7919) %% 90000, "
            "CASE WHEN n %% 10 = 3 THEN 2 ELSE 0 END, 'done', '', 5, 0, 0, "
            "CASE WHEN n %% 10 = 3 THEN 'exit code 2: failed' ELSE '' END, '' FROM seq"
        )
        stamp = start.strftime("%Y-%m-%d %H:%M:%S")
        params = [count - 1, jobs, count - 5, *[stamp] * 4]
    else:
        at = f"%s + n * interval '{step_ms} milliseconds'"
        sql = (
            f"INSERT INTO runs ({columns}) SELECT 'c1-' || lpad((n %% %s)::text, 5, '0'), "
            f"{status}, 'schedule', {at}, {at}, {at}, {at}, 'bench', "
            "200 + (n::bigint * 7919) %% 90000, "
            "CASE WHEN n %% 10 = 3 THEN 2 ELSE 0 END, 'done', '', 5, 0, false, "
            "CASE WHEN n %% 10 = 3 THEN 'exit code 2: failed' ELSE '' END, '' "
            "FROM generate_series(0, %s) AS n"
        )
        params = [jobs, count - 5, start, start, start, start, count - 1]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        # A running run has not finished.
        cursor.execute(
            "UPDATE runs SET finished_at = NULL, duration_ms = NULL, exit_code = NULL "
            "WHERE status = 'running'"
        )


def insert_items(count: int, queues: int) -> None:
    from queues.models import ItemStatus, QueueItem

    statuses = [ItemStatus.COMPLETED] * 6 + [ItemStatus.PENDING] * 3 + [ItemStatus.FAILED]
    QueueItem.objects.bulk_create(
        (
            QueueItem(queue_id=f"c1-q{n % queues:03d}", payload={"n": n}, status=statuses[n % 10])
            for n in range(count)
        ),
        batch_size=5000,
    )


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum (PostgreSQL) or `PRAGMA optimize` would


def pages() -> list[tuple[str, str]]:
    from runner.models import Job, Run

    middle_page = Job.objects.count() // 100  # the job list shows 50 a page

    middle_run = Run.objects.order_by("-id").values_list("id", flat=True)[500]
    return [
        ("dashboard", "/admin/"),
        ("job list", "/admin/runner/job/"),
        ("job list, middle page", f"/admin/runner/job/?p={middle_page}"),
        ("job page", "/admin/runner/job/c1-00042/change/"),
        ("run list", "/admin/runner/run/"),
        ("run list, one job", "/admin/runner/run/?job=c1-00042"),
        ("run page", f"/admin/runner/run/{middle_run}/change/"),
        ("queue list", "/admin/queues/queue/"),
        ("schedule preview", "/admin/runner/job/preview/?schedule=30+0+9+*+*+1-5&timezone=UTC"),
    ]


def time_page(name: str, path: str, repeat: int) -> list:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.login(username="bench", password="bench")
    client.get(path)  # warm-up: templates, caches, the database's pages
    timings = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    return [name, path, round(median(timings), 1), round(max(timings), 1), len(queries)]


def report(args: argparse.Namespace, vendor: str, fill_s: float, rows: list[list]) -> None:
    headers = ["page", "path", "median ms", "max ms", "queries"]
    print()
    goal = f"< {GOAL_MS:.0f} ms"
    print_table([*headers, goal], [[*row, "ok" if row[2] < GOAL_MS else "SLOW"] for row in rows])
    write_results(
        "c1_console_pages",
        {
            "db": vendor,
            "jobs": args.jobs,
            "runs": args.runs,
            "queues": args.queues,
            "items": args.items,
            "distinct_schedules": args.distinct_schedules,
            "fill_s": round(fill_s, 1),
            "goal_ms": GOAL_MS,
            "pages": [dict(zip(headers, row, strict=True)) for row in rows],
        },
    )


if __name__ == "__main__":
    main()
