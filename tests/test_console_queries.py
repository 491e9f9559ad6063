"""No console page makes a query per row: each answers with as many queries for 30
jobs, runs and queues as for one (the 10,000-job figures are bench/c1_console_pages.py's)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from queues.models import Queue
from runner import admin_fires
from runner.models import Job, Run
from tests.factories import JobFactory, QueueFactory, QueueItemFactory, RunFactory

pytestmark = pytest.mark.django_db

STATUSES = ["ok", "error", "skipped", "running", "timeout"]


@pytest.fixture(autouse=True)
def no_cached_fires():
    admin_fires.clear()  # every count below reads its schedules afresh


def world(size: int) -> None:
    """``size`` jobs (distinct schedules), each with ``size`` runs (at least one of each
    status, so every panel has something to show), and ``size`` queues."""
    for n in range(size):
        job = JobFactory(id=f"job-{n:02d}", schedule=f"{n} 9 * * *")
        for m in range(max(size, len(STATUSES))):
            RunFactory(
                job=job,
                status=STATUSES[m % len(STATUSES)],
                duration_ms=1000 + m,
                started_at=timezone.now(),
                finished_at=None if STATUSES[m % len(STATUSES)] == "running" else timezone.now(),
                error="exit code 1: boom" if m % 5 == 1 else "",
            )
        QueueItemFactory.create_batch(2, queue=QueueFactory(id=f"queue-{n:02d}"))


def count(client, url: str) -> int:
    client.get(url)  # the session and the content types, read once
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


PAGES = {
    "dashboard": lambda: reverse("admin:index"),
    "job list": lambda: reverse("admin:runner_job_changelist"),
    "job page": lambda: reverse("admin:runner_job_change", args=["job-00"]),
    "run list": lambda: reverse("admin:runner_run_changelist"),
    "run page": lambda: reverse("admin:runner_run_change", args=[_a_run_of("job-00")]),
    "queue list": lambda: reverse("admin:queues_queue_changelist"),
}


def _a_run_of(job_id: str) -> int:
    return Run.objects.filter(job_id=job_id).order_by("id").values_list("id", flat=True)[0]


@pytest.mark.parametrize("page", PAGES)
def test_a_console_page_takes_as_many_queries_for_30_rows_as_for_one(admin_client, page):
    world(1)
    one = count(admin_client, PAGES[page]())
    world_more = 30
    from runner.models import Run

    Run.objects.all().delete()
    Job.objects.all().delete()
    Queue.objects.all().delete()
    world(world_more)
    admin_fires.clear()
    assert count(admin_client, PAGES[page]()) <= one
