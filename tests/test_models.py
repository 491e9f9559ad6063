"""Database constraints refuse what must never be stored, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from queues.models import QueueItem
from runner.models import Job, Run
from statestore.models import StateEntry, StateItem
from tests.factories import (
    JobFactory,
    QueueFactory,
    QueueItemFactory,
    RunFactory,
    StateEntryFactory,
    StateItemFactory,
)

pytestmark = pytest.mark.django_db

FIRE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def refuses(callable_) -> bool:
    try:
        with transaction.atomic():
            callable_()
    except IntegrityError:
        return True
    return False


def test_an_unknown_run_status_is_refused():
    run = RunFactory()
    assert refuses(lambda: Run.objects.filter(pk=run.pk).update(status="finished"))


def test_an_unknown_trigger_is_refused():
    run = RunFactory()
    assert refuses(lambda: Run.objects.filter(pk=run.pk).update(trigger="cron"))


@pytest.mark.parametrize(
    "field,value",
    [
        ("type", "lambda"),
        ("overlap_policy", "queue"),
        ("missed_fire_policy", "some"),
        ("source_type", "url"),
        ("thinking", "extreme"),
    ],
)
def test_an_unknown_job_choice_is_refused(field, value):
    job = JobFactory()
    assert refuses(lambda: Job.objects.filter(pk=job.pk).update(**{field: value}))


def test_a_zero_timeout_is_refused():
    job = JobFactory()
    assert refuses(lambda: Job.objects.filter(pk=job.pk).update(timeout_ms=0))


def test_a_negative_timeout_is_refused():
    job = JobFactory()
    assert refuses(lambda: Job.objects.filter(pk=job.pk).update(timeout_ms=-5))


def test_a_second_run_for_the_same_scheduled_fire_is_refused():
    job = JobFactory()
    RunFactory(job=job, trigger="schedule", scheduled_for=FIRE)
    assert refuses(lambda: RunFactory(job=job, trigger="schedule", scheduled_for=FIRE))


def test_manual_runs_may_share_a_scheduled_instant():
    job = JobFactory()
    RunFactory(job=job, trigger="schedule", scheduled_for=FIRE)
    RunFactory(job=job, trigger="manual", scheduled_for=FIRE)
    RunFactory(job=job, trigger="manual", scheduled_for=FIRE)
    assert job.runs.count() == 3


def test_a_negative_duration_is_refused():
    run = RunFactory()
    assert refuses(lambda: Run.objects.filter(pk=run.pk).update(duration_ms=-1))


def test_deleting_a_job_deletes_its_runs():
    run = RunFactory()
    run.job.delete()
    assert not Run.objects.filter(pk=run.pk).exists()


def test_a_duplicate_state_key_is_refused():
    StateEntryFactory(namespace="mail", key="cursor")
    assert refuses(lambda: StateEntryFactory(namespace="mail", key="cursor"))


def test_the_same_key_in_another_namespace_is_allowed():
    StateEntryFactory(namespace="mail", key="cursor")
    StateEntryFactory(namespace="calendar", key="cursor")
    assert StateEntry.objects.count() == 2


def test_a_duplicate_collection_item_is_refused():
    StateItemFactory(namespace="mail", key="seen", item_key="m1")
    assert refuses(lambda: StateItemFactory(namespace="mail", key="seen", item_key="m1"))
    assert StateItem.objects.count() == 1


def test_an_unknown_queue_item_status_is_refused():
    item = QueueItemFactory()
    assert refuses(lambda: QueueItem.objects.filter(pk=item.pk).update(status="lost"))


def test_a_claim_without_a_lease_is_refused():
    item = QueueItemFactory()
    assert refuses(lambda: QueueItem.objects.filter(pk=item.pk).update(status="claimed"))


def test_two_live_items_with_one_dedup_key_are_refused():
    queue = QueueFactory()
    QueueItemFactory(queue=queue, dedup_key="msg-1")
    assert refuses(lambda: QueueItemFactory(queue=queue, dedup_key="msg-1"))


def test_a_completed_item_does_not_block_its_dedup_key_at_the_database():
    queue = QueueFactory()
    QueueItemFactory(queue=queue, dedup_key="msg-1", status="completed")
    QueueItemFactory(queue=queue, dedup_key="msg-1")
    assert queue.items.count() == 2


def test_a_queue_needs_at_least_one_attempt():
    queue = QueueFactory()
    assert refuses(lambda: type(queue).objects.filter(pk=queue.pk).update(max_attempts=0))
