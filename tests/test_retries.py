"""Retries (issue 16): a failed or timed-out run is tried again as a new run with trigger
``retry``, after a doubling backoff, within the overlap rules, never past the next fire
of a skip job; the incident counts the final failure once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from runner import notify, retries
from runner.execution.executor import execute_run
from runner.models import Incident, Job, Run, StartResult
from tests.factories import JobFactory, RunFactory
from tests.fakes.alerting import events, texts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("drained_outbox")]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def failed(job: Job, at: datetime, status: str = "error", **fields) -> Run:
    """A run of ``job`` that failed at ``at``, announced as a worker does."""
    run = RunFactory(
        job=job, status=status, started_at=at - 2 * SECOND, finished_at=at, duration_ms=2000,
        error="exit code 1", **fields,
    )  # fmt: skip
    notify.run_finished(run)
    return run


def retry_of(run: Run) -> Run | None:
    return Run.objects.filter(retry_of=run).first()


def test_the_backoff_doubles_and_is_capped_at_an_hour():
    assert [retries.backoff(30, n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retries.backoff(3000, 2).total_seconds() == 3600
    assert retries.backoff(1, 40).total_seconds() == 3600


def test_a_failure_is_retried_with_doubling_backoff_and_alerts_once_on_the_final_failure(
    servers,
):
    slack, hook = servers
    job = JobFactory(id="fetch", name="Fetch", schedule="0 * * * *", retries=2)
    first = failed(job, T0, trigger="schedule", scheduled_for=T0 - 2 * SECOND)
    second = retry_of(first)
    assert (second.trigger, second.attempt, second.status) == ("retry", 2, "pending")
    assert second.scheduled_for == T0 + 30 * SECOND
    assert texts(slack) == []  # a retried failure does not count

    second.delete()  # the retry as a worker would finish it, timed out this time
    second = failed(job, T0 + 35 * SECOND, "timeout", trigger="retry", retry_of=first, attempt=2)
    third = retry_of(second)
    assert (third.attempt, third.scheduled_for) == (3, T0 + 95 * SECOND)  # 60 s later
    assert texts(slack) == []

    third.delete()
    last = failed(job, T0 + 100 * SECOND, trigger="retry", retry_of=second, attempt=3)
    assert retry_of(last) is None  # out of attempts: the final failure
    sent = texts(slack)
    assert len(sent) == 1 and "failing since 2026-03-02 12:01:40 UTC, 1 failure" in sent[0]
    assert Incident.objects.get().failures == 1
    assert events(hook) == [("incident.raised", "failing")]


def test_a_real_script_is_retried_through_the_dispatch_path_and_succeeds(servers, tmp_path):
    slack, _ = servers
    marker = tmp_path / "tried"
    script = f'if [ -e "{marker}" ]; then exit 0; fi; touch "{marker}"; exit 4'
    job = JobFactory(id="once-flaky", script=script, source_type="inline", retries=1)
    job.retry_backoff_s = 5
    job.save()
    first = execute_run(Run.create_manual(job, datetime.now(UTC)).pk)
    assert first.status == "error"
    retry = retry_of(first)
    sent: list[int] = []
    dispatcher = retries.RetryDispatcher(dispatcher=lambda ids: len(sent.extend(ids) or ids))
    assert not dispatcher.dispatch_due(retry.scheduled_for - 1 * SECOND)  # not yet
    assert dispatcher.dispatch_due(retry.scheduled_for)
    assert not dispatcher.dispatch_due(retry.scheduled_for + SECOND)  # once
    assert sent == [retry.pk]
    done = execute_run(sent[0])
    assert (done.status, done.trigger, done.retry_of_id) == ("ok", "retry", first.pk)
    assert texts(slack) == []  # failed once, retried, fine: nothing to alert


def test_a_retry_is_recorded_once_even_when_two_processes_see_the_failure():
    job = JobFactory(retries=3)
    run = RunFactory(job=job, status="error", finished_at=T0)
    assert retries.schedule_retry(run) is True
    assert retries.schedule_retry(run) is True  # the other process: the constraint said no
    assert Run.objects.filter(retry_of=run).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(job=job, trigger="retry", retry_of=run, attempt=2)


def test_a_skip_job_is_never_retried_past_its_next_fire(servers):
    slack, _ = servers
    job = JobFactory(schedule="*/5 * * * *", retries=3, retry_backoff_s=600)
    run = failed(job, T0 + 60 * SECOND)
    assert retry_of(run) is None
    run.refresh_from_db()
    assert "not retried: the retry at 2026-03-02 12:11:00 UTC would come after the next " in (
        run.notes
    )
    assert len(texts(slack)) == 1  # the failure is final: it counts at once


def test_an_allow_job_is_retried_past_its_next_fire():
    job = JobFactory(schedule="*/5 * * * *", retries=1, retry_backoff_s=600)
    job.overlap_policy = "allow"
    job.save()
    run = failed(job, T0 + 60 * SECOND)
    assert retry_of(run).scheduled_for == T0 + 660 * SECOND


def test_ok_skipped_and_manual_stop_are_not_retried():
    job = JobFactory(retries=2)
    for status in ("ok", "skipped"):
        run = RunFactory(job=job, status=status, finished_at=T0)
        assert retries.schedule_retry(run) is False
    assert not Run.objects.filter(trigger="retry").exists()


def test_a_retry_obeys_overlap_skip_and_its_skip_counts_as_the_final_failure(servers):
    slack, _ = servers
    job = JobFactory(retries=1, schedule="0 * * * *")
    first = failed(job, T0)
    retry = retry_of(first)
    busy = RunFactory(job=job, status="pending", trigger="schedule", scheduled_for=T0)
    assert busy.start("w:1", T0 + 20 * SECOND) == StartResult.STARTED
    retry.refresh_from_db()
    assert retry.start("w:2", T0 + 30 * SECOND) == StartResult.SKIPPED
    retry.refresh_from_db()
    notify.run_finished(retry)
    sent = texts(slack)
    assert len(sent) == 1 and "failing since" in sent[0]


def test_retries_are_visible_in_the_api_and_the_run_list(servers):
    job = JobFactory(id="seen", retries=1, schedule="0 * * * *")
    first = failed(job, T0)
    retry = retry_of(first)
    admin = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client = Client()
    client.force_login(admin)
    runs = client.get("/api/jobs/seen/runs").json()["runs"]
    assert [(r["id"], r["trigger"], r["retry_of_id"], r["attempt"]) for r in runs] == [
        (retry.pk, "retry", first.pk, 2),
        (first.pk, "manual", None, 1),
    ]
    listing = client.get("/admin/runner/run/").content.decode()
    assert f'retry (attempt 2) of <a href="/admin/runner/run/{first.pk}/change/">' in listing


@given(first=st.integers(1, 3600), attempt=st.integers(1, 40))
def test_the_backoff_never_shrinks_and_never_passes_the_cap(first, attempt):
    now, later = retries.backoff(first, attempt), retries.backoff(first, attempt + 1)
    assert timedelta(seconds=first) <= now or now == timedelta(seconds=retries.MAX_BACKOFF_S)
    assert now <= later <= timedelta(seconds=retries.MAX_BACKOFF_S)


# The loop calls close_old_connections(): the test's data must be committed.
@pytest.mark.django_db(transaction=True)
def test_the_scheduler_loop_dispatches_a_due_retry_once():
    from runner.daemon import Daemon
    from tests.fakes.clocks import FakeClocks

    job = JobFactory(retries=1, schedule="0 * * * *")
    first = RunFactory(job=job, status="error", finished_at=T0)
    assert retries.schedule_retry(first)
    retry = retry_of(first)
    clocks = FakeClocks(T0 + 10 * SECOND)
    daemon = Daemon(workers=False, clocks=clocks)
    daemon.scheduler._dispatch = lambda ids: len(list(ids))
    daemon.liveness._dispatch = lambda ids: len(list(ids))
    sent: list[int] = []
    daemon.watch._retries._dispatch = lambda ids: len(sent.extend(ids) or ids)
    daemon.start()
    daemon.cycle()
    clocks.advance(19)  # 12:00:29: due at 12:00:30, past the lead and the next look
    daemon.cycle()
    assert sent == []
    clocks.advance(0.5)  # within the lead (0.25 s) and the next look (0.5 s)
    daemon.cycle()
    assert sent == [retry.pk]
    for _ in range(3):
        clocks.advance(0.5)
        daemon.cycle()
    assert sent == [retry.pk]  # once


@pytest.mark.django_db(transaction=True)
def test_two_processes_finishing_one_failure_at_once_record_one_retry():
    """The second meets the first's uncommitted retry: on PostgreSQL it waits on the
    unique index, on SQLite on the write lock; then the constraint refuses it."""
    from tests.test_locking import Second, wait_until_waiting_on_a_lock_or_done

    job = JobFactory(retries=2)
    run = RunFactory(job=job, status="error", finished_at=T0)
    with transaction.atomic():
        assert retries.schedule_retry(run)
        second = Second(
            lambda: retries.schedule_retry(Run.objects.select_related("job").get(pk=run.pk))
        )
        second.start()
        wait_until_waiting_on_a_lock_or_done(second)
    second.join(30)
    assert second.result is True
    assert Run.objects.filter(retry_of=run).count() == 1
