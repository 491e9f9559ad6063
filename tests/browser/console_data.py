"""A night of a small automation stack, for the console's pages and README screenshots:
a dozen jobs (cron, six-field, a recurrence object, a session, one disabled), each with
a history of runs ending now, one job failing, one run running, queues with work."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from queues.models import ItemStatus, Queue, QueueItem
from runner.models import Job, Run, SchedulerHeartbeat

MONTHLY = '{"freq":"monthly","bymonthday":1,"byhour":6,"byminute":0,"timezone":"Europe/Paris"}'
# id, name, schedule, zone, type, enabled, (typical ms, spread), failure rate
JOBS = [
    (
        "backup-db",
        "Nightly database backup",
        "0 3 * * *",
        "Europe/Berlin",
        "script",
        True,
        (184_000, 20_000),
        0.0,
    ),
    ("fetch-feeds", "Fetch RSS feeds", "*/10 * * * *", "", "script", True, (4_200, 1_500), 0.1),
    (
        "send-digest",
        "Morning digest mail",
        "30 9 * * 1-5",
        "Europe/Berlin",
        "script",
        True,
        (2_300, 400),
        0.0,
    ),
    ("rotate-logs", "Rotate application logs", "@daily", "", "script", True, (800, 200), 0.0),
    (
        "sync-crm",
        "Sync contacts to the CRM",
        "0 */2 * * *",
        "America/New_York",
        "script",
        True,
        (61_000, 9_000),
        0.05,
    ),
    ("heartbeat", "Ping the uptime monitor", "*/30 * * * * *", "", "script", True, (120, 40), 0.0),
    (
        "inbox-triage",
        "Triage the support inbox",
        "*/15 8-18 * * 1-5",
        "Europe/London",
        "session",
        True,
        (48_000, 12_000),
        0.0,
    ),
    (
        "billing-report",
        "Monthly billing report",
        MONTHLY,
        "",
        "script",
        True,
        (95_000, 10_000),
        0.0,
    ),
    (
        "scrape-prices",
        "Scrape competitor prices",
        "*/5 * * * *",
        "",
        "script",
        True,
        (9_500, 3_000),
        0.6,
    ),
    (
        "renew-certs",
        "Renew TLS certificates",
        "0 4 * * 1",
        "",
        "script",
        True,
        (12_000, 2_000),
        0.0,
    ),
    (
        "cleanup-tmp",
        "Clean up temporary files",
        "0 * * * *",
        "",
        "script",
        False,
        (1_500, 300),
        0.0,
    ),
]
RUNS_PER_JOB = 24
ERRORS = {
    "scrape-prices": "exit code 2: HTTPError 503: shop.example.com is unavailable",
    "fetch-feeds": "exit code 1: feed https://blog.example.org/rss timed out",
    "sync-crm": "exit code 1: 429 Too Many Requests from the CRM API",
}


def build(now: datetime | None = None, seed: int = 15) -> None:
    """Write the stack's jobs, runs, a live scheduler and queues (returns nothing)."""
    now = now or timezone.now()
    rng = random.Random(seed)
    history: list[Run] = []
    for job_id, name, schedule, zone, kind, enabled, (typical, spread), failing in JOBS:
        script = (
            "Summarise new support mail and label it."
            if kind == "session"
            else (f"scripts/{job_id}.sh")
        )
        job = Job.objects.create(
            id=job_id,
            name=name,
            schedule=schedule,
            timezone=zone,
            type=kind,
            enabled=enabled,
            script=script,
            source_type="inline" if kind == "session" else "path",
        )
        history += _history(job, now, rng, typical, spread, failing)
    # Oldest first across jobs, as a scheduler would have recorded them.
    Run.objects.bulk_create(sorted(history, key=lambda run: run.scheduled_for))
    Run.objects.update(created_at=F("scheduled_for"))
    running = Run.objects.create(
        job_id="sync-crm",
        status="running",
        trigger="schedule",
        scheduled_for=now - timedelta(seconds=42),
        started_at=now - timedelta(seconds=41),
        worker="runner-1:4242",
        stdout="syncing 1,204 contacts\nbatch 1 of 5: 250 updated\nbatch 2 of 5: 250 updated\n",
    )
    Run.objects.filter(pk=running.pk).update(created_at=now - timedelta(seconds=42))
    SchedulerHeartbeat.objects.create(
        worker="runner-1:4242", started_at=now - timedelta(hours=6, minutes=12), seen_at=now
    )
    _queues(now, rng)


def _history(job: Job, now: datetime, rng, typical: int, spread: int, failing: float) -> list[Run]:
    runs = []
    for index in range(RUNS_PER_JOB, 0, -1):
        at = now - timedelta(minutes=index * 17 + rng.randint(0, 5))
        failed = rng.random() < failing
        duration = max(50, int(rng.gauss(typical, spread)))
        runs.append(
            Run(
                job=job,
                trigger="schedule",
                scheduled_for=at,
                started_at=at + timedelta(milliseconds=30),
                finished_at=at + timedelta(milliseconds=duration),
                duration_ms=duration,
                status="error" if failed else "ok",
                exit_code=(2 if failed else 0),
                error=ERRORS.get(job.id, "exit code 1: failed") if failed else "",
                stdout=f"{job.name}: done\n",
                stdout_bytes=len(job.name) + 7,
                worker="runner-1:4242",
            )
        )
    return runs


def _queues(now: datetime, rng) -> None:
    for queue_id, name, pending, claimed, failed, done in (
        ("emails", "Outgoing mail", 14, 2, 1, 120),
        ("thumbnails", "Image thumbnails", 230, 4, 0, 3_100),
        ("webhooks", "Webhook deliveries", 3, 1, 7, 512),
        ("reindex", "Search reindexing", 0, 0, 0, 48),
    ):
        queue = Queue.objects.create(id=queue_id, name=name)
        items = []
        for status, count in (
            (ItemStatus.PENDING, pending),
            (ItemStatus.CLAIMED, claimed),
            (ItemStatus.FAILED, failed),
            (ItemStatus.COMPLETED, min(done, 40)),
        ):
            lease = now + timedelta(minutes=5) if status == ItemStatus.CLAIMED else None
            items += [
                QueueItem(queue=queue, payload={"n": n}, status=status, lease_expires_at=lease)
                for n in range(count)
            ]
        QueueItem.objects.bulk_create(items)
        oldest = now - timedelta(minutes=rng.randint(2, 90))
        QueueItem.objects.filter(queue=queue, status=ItemStatus.PENDING).update(created_at=oldest)
