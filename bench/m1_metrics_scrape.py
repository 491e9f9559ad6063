"""M1 (metrics): how long one ``GET /metrics`` takes with 10,000 jobs.

Fills a scratch database with ``--jobs`` jobs, ``--runs-per-job`` finished
scheduled runs each (mixed statuses, durations and fire lags), a few running
and pending runs, ``--queues`` queues with items, and a scheduler heartbeat;
then scrapes ``/metrics`` ``--scrapes`` times through Django's test client
(from 127.0.0.1) and reports p50/p99/max and the response size. Every scrape
derives everything from the database (``runner.metrics``), so the cost grows
with the rows in the runs table, not with the number of processes.

    .venv/bin/python bench/m1_metrics_scrape.py                       # SQLite, 10,000 jobs
    .venv/bin/python bench/m1_metrics_scrape.py --db postgres://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file

from bench.support import db_argument, print_table, scratch_database, summary_ms, write_results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    db_argument(parser)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs-per-job", type=int, default=10)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument(
        "--breakdown", action="store_true", help="also time each metric family and the rendering"
    )
    return parser.parse_args()


def breakdown(rounds: int = 3) -> dict[str, float]:
    """Median milliseconds of each part of a scrape: each family's queries (``PARTS``),
    rendering the exposition of families already collected, and ``late_jobs``."""
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from runner import lateness, metrics

    timings: dict[str, list[float]] = {}

    def timed(name: str, work) -> object:
        begin = time.perf_counter()
        result = work()
        timings.setdefault(name, []).append(time.perf_counter() - begin)
        return result

    for _ in range(rounds):
        for name in metrics.PARTS:
            part = getattr(metrics, name)
            timed(name.lstrip("_"), lambda part=part: list(_families(part())))
        families = list(metrics.RunnerCollector().collect())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(families))
        timed("render", lambda registry=registry: generate_latest(registry))
        timed("late_jobs (not in /metrics)", lambda: lateness.late_jobs(datetime.now(UTC)))
    return {name: round(sorted(t)[len(t) // 2] * 1000, 1) for name, t in timings.items()}


def _families(result):
    return result if isinstance(result, list) or hasattr(result, "__next__") else [result]


class _Fixed:
    def __init__(self, families) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


def fill(jobs: int, runs_per_job: int, queues: int) -> None:
    from queues.models import Queue, QueueItem
    from runner.models import Job, Run, SchedulerHeartbeat

    rng = random.Random(16)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    Job.objects.bulk_create(
        [
            Job(id=f"job-{n:05d}", name=f"Job {n}", schedule="*/5 * * * *", script="true")
            for n in range(jobs)
        ],
        batch_size=1000,
    )
    batch: list = []
    for n in range(jobs):
        for i in range(runs_per_job):
            fire = base + timedelta(minutes=5 * i)
            start = fire + timedelta(seconds=rng.expovariate(2))
            ms = int(rng.expovariate(1 / 5000))
            batch.append(
                Run(
                    job_id=f"job-{n:05d}",
                    trigger="schedule",
                    scheduled_for=fire,
                    started_at=start,
                    finished_at=start + timedelta(milliseconds=ms),
                    duration_ms=ms,
                    status=rng.choice(["ok", "ok", "ok", "error", "timeout", "skipped"]),
                )
            )
        if len(batch) >= 5000:
            Run.objects.bulk_create(batch)
            batch = []
    Run.objects.bulk_create(batch)
    Run.objects.bulk_create(
        [Run(job_id=f"job-{n:05d}", status="running", trigger="manual") for n in range(50)]
        + [Run(job_id=f"job-{n:05d}", status="pending", trigger="manual") for n in range(50, 100)]
    )
    Queue.objects.bulk_create([Queue(id=f"queue-{q}") for q in range(queues)])
    QueueItem.objects.bulk_create(
        [QueueItem(queue_id=f"queue-{q % queues}", payload={"n": q}) for q in range(queues * 50)],
        batch_size=1000,
    )
    now = datetime.now(UTC)
    SchedulerHeartbeat.objects.create(worker="bench:1", started_at=now, seen_at=now)


def main() -> None:
    args = parse_args()
    with scratch_database(args.db, "m1") as scratch:
        from django.db import connection
        from django.test import Client

        started = time.perf_counter()
        fill(args.jobs, args.runs_per_job, args.queues)
        fill_s = time.perf_counter() - started
        client = Client()
        timings: list[float] = []
        # This process's CPU time: the scrape's own cost on SQLite (in-process), less
        # swayed than wall time by other work on a shared machine (on PostgreSQL the
        # queries' CPU is the server's and is not in it).
        cpu_timings: list[float] = []
        size = 0
        for _ in range(args.scrapes):
            begin, cpu = time.perf_counter(), time.process_time()
            response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
            timings.append(time.perf_counter() - begin)
            cpu_timings.append(time.process_time() - cpu)
            assert response.status_code == 200, response.status_code
            size = len(response.content)
        result = {
            "db": connection.vendor,
            "url": scratch.url.split("@")[-1],
            "jobs": args.jobs,
            "runs": args.jobs * args.runs_per_job + 100,
            "fill_s": round(fill_s, 1),
            "response_bytes": size,
            **summary_ms(timings),
            "cpu_p50_ms": summary_ms(cpu_timings)["p50_ms"],
        }
        if args.breakdown:
            result["breakdown_ms"] = breakdown()
        print_table(list(result), [list(result.values())])
        print(write_results("m1_metrics_scrape", result))


if __name__ == "__main__":
    main()
