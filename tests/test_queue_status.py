"""Queue status, peek, retention pruning, and the admin's retry and purge."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse

from queues.maintenance import prune_finished_items, purge_completed_items, retry_failed_items
from queues.models import Queue, QueueItem
from queues.status import peek, queue_status, queue_statuses
from tests.factories import QueueFactory, QueueItemFactory
from tests.moments import NOW

pytestmark = pytest.mark.django_db


def finished(queue: Queue, status: str, at: datetime, **kwargs) -> QueueItem:
    return QueueItemFactory(queue=queue, status=status, completed_at=at, **kwargs)


# -- status and peek -----------------------------------------------------------------------


def test_status_counts_each_state_and_the_oldest_pending_age(jr, clock):
    jr.enqueue("mail", {"n": 1})
    clock.shift(timedelta(seconds=30))
    for n in range(2, 6):
        jr.enqueue("mail", {"n": n}, max_attempts=1)
    [first, second, _held] = jr.dequeue("mail", count=3)
    jr.done(first.id)
    jr.fail(second.id)
    clock.shift(timedelta(seconds=15))
    assert queue_status("mail") == {
        "id": "mail",
        "depth": 2,
        "claimed": 1,
        "failed": 1,
        "completed": 1,
        "oldest_pending_age_seconds": 15.0,
    }


def test_an_empty_queue_has_no_oldest_pending_age():
    QueueFactory(id="mail")
    assert queue_status("mail")["oldest_pending_age_seconds"] is None


def test_status_of_an_unknown_queue_is_refused():
    with pytest.raises(Queue.DoesNotExist):
        queue_status("nothing")


def test_statuses_cover_every_queue_in_id_order(jr):
    QueueFactory(id="b-queue")
    jr.enqueue("a-queue", {"n": 1})
    assert [(s["id"], s["depth"]) for s in queue_statuses()] == [("a-queue", 1), ("b-queue", 0)]


def test_peek_shows_the_next_items_in_claim_order_without_claiming(jr):
    jr.enqueue("mail", {"n": 1})
    jr.enqueue("mail", {"n": 2}, priority=9)
    jr.enqueue("mail", {"n": 3})
    assert [item["payload"] for item in peek("mail", limit=2)] == [{"n": 2}, {"n": 1}]
    assert QueueItem.objects.filter(status="pending").count() == 3


def test_peek_on_an_unknown_queue_is_refused():
    with pytest.raises(Queue.DoesNotExist):
        peek("nothing")


# -- retention -----------------------------------------------------------------------------


def test_finished_items_older_than_the_default_retention_are_pruned():
    queue = QueueFactory(id="mail")
    old_done = finished(queue, "completed", NOW - timedelta(days=8))
    recent_done = finished(queue, "completed", NOW - timedelta(days=6))
    old_failed = finished(queue, "failed", NOW - timedelta(days=31))
    recent_failed = finished(queue, "failed", NOW - timedelta(days=8))
    assert prune_finished_items(NOW, batch_size=100) == 2
    left = set(QueueItem.objects.values_list("id", flat=True))
    assert left == {recent_done.id, recent_failed.id}
    assert not {old_done.id, old_failed.id} & left


def test_each_queue_prunes_by_its_own_retention():
    short = QueueFactory(id="short", retention={"completed": "60m"})
    long = QueueFactory(id="long", retention={"completed": "30d"})
    finished(short, "completed", NOW - timedelta(hours=2))
    kept = finished(long, "completed", NOW - timedelta(hours=2))
    prune_finished_items(NOW)
    assert list(QueueItem.objects.values_list("id", flat=True)) == [kept.id]


def test_a_null_retention_keeps_finished_items_forever():
    queue = QueueFactory(id="mail", retention={"failed": None})
    finished(queue, "failed", NOW - timedelta(days=3650))
    assert prune_finished_items(NOW) == 0


def test_pruning_never_touches_pending_or_claimed_items():
    queue = QueueFactory(id="mail", retention={"completed": "90s", "failed": "90s"})
    QueueItemFactory(queue=queue, created_at=NOW - timedelta(days=90))
    assert prune_finished_items(NOW) == 0


def test_pruning_works_in_batches_of_the_size_given():
    queue = QueueFactory(id="mail")
    for _ in range(5):
        finished(queue, "completed", NOW - timedelta(days=30))
    assert [prune_finished_items(NOW, batch_size=2) for _ in range(4)] == [2, 2, 1, 0]


# -- retry and purge -----------------------------------------------------------------------


def test_retrying_a_failed_item_gives_it_fresh_attempts():
    item = QueueItemFactory(status="failed", attempts=3, error="boom", completed_at=NOW)
    assert retry_failed_items(QueueItem.objects.all()) == 1
    item.refresh_from_db()
    assert (item.status, item.attempts, item.error, item.completed_at) == ("pending", 0, "", None)


def test_retrying_leaves_items_that_did_not_fail_alone():
    done = QueueItemFactory(status="completed", completed_at=NOW)
    assert retry_failed_items(QueueItem.objects.all()) == 0
    done.refresh_from_db()
    assert done.status == "completed"


def test_a_failed_item_whose_key_is_live_again_is_not_retried():
    queue = QueueFactory(id="mail", dedup_config={"path": "$.id"})
    failed = QueueItemFactory(queue=queue, status="failed", dedup_key="1", completed_at=NOW)
    QueueItemFactory(queue=queue, dedup_key="1")
    assert retry_failed_items(QueueItem.objects.all()) == 0
    failed.refresh_from_db()
    assert failed.status == "failed"


def test_of_two_failed_copies_of_one_key_only_one_is_retried():
    queue = QueueFactory(id="mail", dedup_config={"path": "$.id"})
    for _ in range(2):
        QueueItemFactory(queue=queue, status="failed", dedup_key="1", completed_at=NOW)
    assert retry_failed_items(QueueItem.objects.all()) == 1


def test_purging_deletes_only_completed_items():
    done = QueueItemFactory(status="completed", completed_at=NOW)
    pending = QueueItemFactory(queue=done.queue)
    assert purge_completed_items(QueueItem.objects.all()) == 1
    assert list(QueueItem.objects.values_list("id", flat=True)) == [pending.id]


def test_the_item_admin_retries_the_selected_failed_items(admin_client):
    item = QueueItemFactory(status="failed", attempts=3, completed_at=NOW)
    response = admin_client.post(
        reverse("admin:queues_queueitem_changelist"),
        {"action": "retry_failed", "_selected_action": [item.pk]},
        follow=True,
    )
    assert "1 failed items put back" in response.content.decode()
    item.refresh_from_db()
    assert item.status == "pending"


def test_the_queue_admin_purges_the_completed_items_of_selected_queues(admin_client):
    kept = QueueItemFactory(status="completed", completed_at=NOW)
    purged = QueueItemFactory(status="completed", completed_at=NOW)
    admin_client.post(
        reverse("admin:queues_queue_changelist"),
        {"action": "purge_completed", "_selected_action": [purged.queue_id]},
    )
    assert list(QueueItem.objects.values_list("id", flat=True)) == [kept.id]


def test_the_queue_change_page_shows_its_status(admin_client):
    item = QueueItemFactory()
    response = admin_client.get(reverse("admin:queues_queue_change", args=[item.queue_id]))
    assert "1 pending, 0 claimed, 0 failed, 0 completed" in response.content.decode()
