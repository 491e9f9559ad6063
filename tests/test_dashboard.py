"""The console's home page: health, running runs, failures, failed schedules, next fires, queues."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from runner import coalesce
from runner.models import Job, Run
from tests.factories import JobFactory, QueueFactory, QueueItemFactory, RunFactory

pytestmark = pytest.mark.django_db


def home(client) -> str:
    return client.get(reverse("admin:index")).text


def test_the_home_page_groups_failures_of_the_last_day_by_job_with_the_latest_error_line(
    admin_client, clock
):
    job = JobFactory(id="inbox")
    ended = timezone.now()  # a failed run has finished: the window is by finish time
    RunFactory(job=job, status="error", error="exit code 1:\nold trouble", finished_at=ended)
    latest = RunFactory(job=job, status="timeout", error="timed out after 5 ms", finished_at=ended)
    RunFactory(job=JobFactory(id="fine"), status="ok", finished_at=ended)
    RunFactory(
        job=JobFactory(id="long-ago"), status="error", finished_at=ended - timedelta(hours=25)
    )
    page = home(admin_client)
    failures = page.split('id="jr-failures"')[1].split("</table>")[0]
    assert "inbox" in failures and "2 failed" in failures
    assert f"#{latest.pk}" in failures and "timed out after 5 ms" in failures
    assert "fine" not in failures and "long-ago" not in failures


def test_the_home_page_shows_running_runs_with_their_elapsed_time(admin_client, clock):
    RunFactory(
        job=JobFactory(id="slow"),
        status="running",
        started_at=timezone.now() - timedelta(seconds=75),
    )
    running = home(admin_client).split('id="jr-running"')[1].split("</table>")[0]
    assert "slow" in running and "1 min 15 s" in running


def test_the_home_page_counts_the_workers_whose_running_runs_beat_lately(admin_client, clock):
    now = timezone.now()
    for worker, beat in (("host:1", 1), ("host:1", 1), ("host:2", 1), ("host:3", 3600)):
        RunFactory(status="running", worker=worker, heartbeat_at=now - timedelta(seconds=beat))
    RunFactory(status="ok", worker="host:4", heartbeat_at=now)
    health = home(admin_client).split('id="jr-health"')[1].split("</table>")[0]
    assert "<th>workers busy</th><td>2</td>" in health  # host:3 went silent an hour ago


def test_the_home_page_shows_runs_skipped_while_waiting_for_a_worker(admin_client, clock):
    job = JobFactory(id="busy", schedule="* * * * * *")
    clock.shift(-15)
    waited = RunFactory(job=job, trigger="schedule", scheduled_for=timezone.now())
    clock.shift(15)
    coalesce.sweep(timezone.now())  # overtaken: skipped unstarted
    assert Run.objects.get(pk=waited.pk).status == "skipped"
    health = home(admin_client).split('id="jr-health"')[1].split("</table>")[0]
    assert "1 skipped</span> unstarted after waiting for a worker in the last minute" in health
    assert "degraded" in health


def test_the_home_page_lists_next_fires_failed_schedules_and_queue_depths(admin_client, clock):
    JobFactory(id="soon", schedule="*/5 * * * *")
    JobFactory(id="broken", schedule="*/5 * * * *")
    Job.objects.filter(pk="broken").update(schedule="not cron")
    queue = QueueFactory(id="mail")
    QueueItemFactory.create_batch(3, queue=queue)
    page = home(admin_client)
    assert "soon" in page.split('id="jr-next"')[1].split("</table>")[0]
    assert "(in 5 min)" in page
    assert "broken" in page.split('id="jr-failed-schedules"')[1].split("</table>")[0]
    queues = page.split('id="jr-queues"')[1].split("</table>")[0]
    assert "<td>3</td>" in queues


def test_the_home_page_takes_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    for number in range(20):
        job = JobFactory(id=f"job-{number}")
        RunFactory(job=job, status="error", error="boom")
        QueueFactory(id=f"queue-{number}")
    home(admin_client)
    with django_assert_max_num_queries(20):
        home(admin_client)


def test_staff_without_the_view_run_permission_see_no_dashboard(client):
    user = User.objects.create_user("queues", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_queue"))
    client.force_login(user)
    RunFactory(status="error")
    assert "jr-dashboard" not in home(client)
