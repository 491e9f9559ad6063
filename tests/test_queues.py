"""Queues through the script client: enqueue, claim order, done, fail, leases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ObjectDoesNotExist, ValidationError

from queues.exceptions import ClaimLost
from queues.maintenance import reclaim_expired_leases
from queues.models import LEASE_EXPIRED_ERROR, Queue, QueueItem
from runner.client import get_runner_client
from tests.factories import QueueFactory
from tests.moments import NOW

pytestmark = pytest.mark.django_db


def status_of(item_id: int) -> str:
    return QueueItem.objects.get(pk=item_id).status


# -- enqueue -------------------------------------------------------------------------------


def test_enqueue_returns_the_new_items_id(jr):
    item_id = jr.enqueue("mail", {"id": 1})
    assert QueueItem.objects.get(pk=item_id).payload == {"id": 1}


def test_enqueueing_to_an_undefined_queue_defines_it_with_one_attempt_as_the_original(jr):
    jr.enqueue("new-queue", {"id": 1})
    queue = Queue.objects.get(pk="new-queue")
    assert (queue.max_attempts, queue.dedup_config, queue.retention) == (1, None, {})


def test_a_failed_item_of_a_queue_made_by_its_first_enqueue_is_not_retried(jr):
    item_id = jr.enqueue("new-queue", {"id": 1})
    [claimed] = jr.dequeue("new-queue")
    jr.fail(claimed.id, "boom")
    assert QueueItem.objects.get(pk=item_id).status == "failed"
    assert jr.dequeue("new-queue") == []


def test_an_item_takes_its_queues_attempt_limit(jr):
    QueueFactory(id="mail", max_attempts=5)
    assert QueueItem.objects.get(pk=jr.enqueue("mail", {})).max_attempts == 5


def test_an_item_may_set_its_own_attempt_limit(jr):
    QueueFactory(id="mail", max_attempts=5)
    assert QueueItem.objects.get(pk=jr.enqueue("mail", {}, max_attempts=1)).max_attempts == 1


@pytest.mark.parametrize(
    "payload", [{"at": datetime(2026, 1, 1)}, {1, 2}, float("nan"), object(), None, "a\x00"]
)
def test_a_payload_that_is_not_json_is_refused_and_nothing_is_written(jr, payload):
    with pytest.raises(ValidationError) as refused:
        jr.enqueue("mail", payload)
    assert "payload" in refused.value.message_dict
    assert not Queue.objects.exists()


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"priority": "high"}, "priority"),
        ({"priority": 2**31}, "priority"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -1}, "max_attempts"),
    ],
)
def test_bad_enqueue_options_are_refused_and_nothing_is_written(jr, kwargs, field):
    with pytest.raises(ValidationError) as refused:
        jr.enqueue("mail", {"id": 1}, **kwargs)
    assert field in refused.value.message_dict
    assert not QueueItem.objects.exists()


@pytest.mark.parametrize("queue", ["", "has space", "-leading", None, "x" * 201])
def test_a_bad_queue_id_is_refused(jr, queue):
    with pytest.raises(ValidationError) as refused:
        jr.enqueue(queue, {"id": 1})
    assert "queue" in refused.value.message_dict
    assert not Queue.objects.exists()


# -- dequeue -------------------------------------------------------------------------------


def test_a_dequeued_item_carries_its_id_payload_and_attempt(jr):
    item_id = jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail")
    assert (item.id, item.payload, item.attempts) == (item_id, {"id": 1}, 1)


def test_an_empty_queue_gives_nothing(jr):
    QueueFactory(id="mail")
    assert jr.dequeue("mail") == []


def test_an_undefined_queue_gives_nothing_and_stays_undefined(jr):
    assert jr.dequeue("nothing-here") == []
    assert not Queue.objects.exists()


def test_dequeue_claims_up_to_count_items(jr):
    for n in range(5):
        jr.enqueue("mail", {"n": n})
    assert len(jr.dequeue("mail", count=3)) == 3
    assert QueueItem.objects.filter(status="claimed").count() == 3


def test_higher_priority_items_are_claimed_first_then_oldest(jr):
    low = jr.enqueue("mail", {"n": 1}, priority=0)
    high_old = jr.enqueue("mail", {"n": 2}, priority=5)
    negative = jr.enqueue("mail", {"n": 3}, priority=-1)
    high_new = jr.enqueue("mail", {"n": 4}, priority=5)
    claimed = [item.id for item in jr.dequeue("mail", count=4)]
    assert claimed == [high_old, high_new, low, negative]


def test_one_at_a_time_claims_take_the_highest_priority_first_then_the_oldest(jr):
    low = jr.enqueue("mail", {"n": 1}, priority=0)
    high_old = jr.enqueue("mail", {"n": 2}, priority=5)
    negative = jr.enqueue("mail", {"n": 3}, priority=-1)
    high_new = jr.enqueue("mail", {"n": 4}, priority=5)
    claimed = [item.id for _ in range(4) for item in jr.dequeue("mail", count=1)]
    assert claimed == [high_old, high_new, low, negative]


def test_a_claimed_item_is_not_handed_out_again(jr):
    jr.enqueue("mail", {"id": 1})
    jr.dequeue("mail")
    assert jr.dequeue("mail") == []


def test_a_claim_holds_the_item_for_its_lease(jr, clock):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail", lease="90s")
    assert QueueItem.objects.get(pk=item.id).lease_expires_at == NOW + timedelta(seconds=90)


def test_a_lease_may_be_given_in_seconds(jr, clock):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail", lease=2.5)
    assert item.lease_expires_at == NOW + timedelta(seconds=2.5)


@pytest.mark.parametrize(
    "lease", [10**400, -(10**400), 10**5000, 2**63], ids=["1e400", "-1e400", "1e5000", "2^63"]
)
def test_a_lease_of_too_many_seconds_is_refused_not_a_crash(jr, lease):
    """An int beyond a float's range, or with too many digits to print (probe finding)."""
    QueueFactory(id="mail")
    with pytest.raises(ValidationError) as refused:
        jr.dequeue("mail", lease=lease)
    assert "at most" in refused.value.message_dict["lease"][0]


def test_the_default_lease_is_five_minutes(jr, clock):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail")
    assert item.lease_expires_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"count": 0}, "count"),
        ({"count": -3}, "count"),
        ({"count": 1001}, "count"),
        ({"count": "2"}, "count"),
        ({"lease": -5}, "lease"),
        ({"lease": 0}, "lease"),
        ({"lease": "5 minutes"}, "lease"),
        ({"lease": float("inf")}, "lease"),
    ],
)
def test_bad_dequeue_arguments_are_refused_and_nothing_is_claimed(jr, kwargs, field):
    jr.enqueue("mail", {"id": 1})
    with pytest.raises(ValidationError) as refused:
        jr.dequeue("mail", **kwargs)
    assert field in refused.value.message_dict
    assert QueueItem.objects.get().status == "pending"


# -- done and fail -------------------------------------------------------------------------


def test_done_completes_the_item(jr, clock):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail")
    jr.done(item.id)
    stored = QueueItem.objects.get(pk=item.id)
    assert (stored.status, stored.completed_at, stored.claim_token) == ("completed", NOW, None)


def test_done_twice_is_refused_and_the_item_stays_completed(jr):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail")
    jr.done(item.id)
    with pytest.raises(ClaimLost):
        jr.done(item.id)
    assert status_of(item.id) == "completed"


def test_done_for_an_unknown_item_id_is_refused(jr):
    with pytest.raises(ObjectDoesNotExist, match="queue item 999 does not exist"):
        jr.done(999)


@pytest.mark.parametrize("item_id", [0, -1, "7", None, 1.0])
def test_done_for_a_malformed_item_id_is_refused(jr, item_id):
    with pytest.raises(ValidationError) as refused:
        jr.done(item_id)
    assert "item_id" in refused.value.message_dict


def test_done_for_an_item_this_client_never_claimed_is_refused(jr):
    item_id = jr.enqueue("mail", {"id": 1})
    with pytest.raises(ClaimLost):
        jr.done(item_id)
    assert status_of(item_id) == "pending"


def test_done_for_an_item_another_client_holds_is_refused(jr):
    jr.enqueue("mail", {"id": 1})
    with get_runner_client() as other:
        [item] = other.dequeue("mail")
    with pytest.raises(ClaimLost):
        jr.done(item.id)
    assert status_of(item.id) == "claimed"


def test_fail_with_attempts_left_puts_the_item_back_with_its_error(jr):
    jr.enqueue("mail", {"id": 1}, max_attempts=2)
    [item] = jr.dequeue("mail")
    jr.fail(item.id, "timeout talking to IMAP")
    stored = QueueItem.objects.get(pk=item.id)
    assert (stored.status, stored.attempts, stored.error) == (
        "pending",
        1,
        "timeout talking to IMAP",
    )


def test_a_failed_item_is_claimed_again_as_its_next_attempt(jr):
    jr.enqueue("mail", {"id": 1}, max_attempts=2)
    [first] = jr.dequeue("mail")
    jr.fail(first.id)
    [second] = jr.dequeue("mail")
    assert (second.id, second.attempts) == (first.id, 2)


def test_fail_on_the_last_attempt_dead_letters_the_item(jr, clock):
    jr.enqueue("mail", {"id": 1}, max_attempts=1)
    [item] = jr.dequeue("mail")
    jr.fail(item.id, "bad payload")
    stored = QueueItem.objects.get(pk=item.id)
    assert (stored.status, stored.error, stored.completed_at) == ("failed", "bad payload", NOW)


def test_an_item_is_retried_until_its_attempts_run_out_then_failed(jr):
    item_id = jr.enqueue("mail", {"id": 1}, max_attempts=3)
    for _ in range(3):
        [item] = jr.dequeue("mail")
        jr.fail(item.id, f"attempt {item.attempts}")
    stored = QueueItem.objects.get(pk=item_id)
    assert (stored.status, stored.attempts, stored.error) == ("failed", 3, "attempt 3")
    assert jr.dequeue("mail") == []


def test_fail_for_an_item_no_longer_held_is_refused(jr):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail")
    jr.done(item.id)
    with pytest.raises(ClaimLost):
        jr.fail(item.id, "late")
    assert status_of(item.id) == "completed"


def test_fail_for_an_unknown_item_id_is_refused(jr):
    with pytest.raises(ObjectDoesNotExist):
        jr.fail(12345, "x")


def test_a_very_long_error_is_kept_bounded(jr):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail")
    jr.fail(item.id, "x" * 50_000)
    assert len(QueueItem.objects.get(pk=item.id).error) == 10_000


# -- leases --------------------------------------------------------------------------------


def test_an_expired_claim_goes_back_to_the_queue_on_the_next_claim(jr, clock):
    QueueFactory(id="mail", max_attempts=3)  # retries allowed
    jr.enqueue("mail", {"id": 1})
    [first] = jr.dequeue("mail", lease="90s")
    clock.shift(timedelta(seconds=90))
    [again] = jr.dequeue("mail")
    assert (again.id, again.attempts) == (first.id, 2)


def test_an_unexpired_claim_is_not_taken_back(jr, clock):
    jr.enqueue("mail", {"id": 1})
    jr.dequeue("mail", lease="90s")
    clock.shift(timedelta(seconds=89))
    assert jr.dequeue("mail") == []


def test_an_expired_claim_on_its_last_attempt_is_failed(jr, clock):
    item_id = jr.enqueue("mail", {"id": 1}, max_attempts=1)
    jr.dequeue("mail", lease="90s")
    clock.shift(timedelta(minutes=2))
    assert jr.dequeue("mail") == []
    stored = QueueItem.objects.get(pk=item_id)
    assert (stored.status, stored.error) == ("failed", LEASE_EXPIRED_ERROR)


def test_done_from_a_claim_that_expired_and_was_handed_out_again_is_refused(jr, clock):
    QueueFactory(id="mail", max_attempts=3)  # retries allowed
    jr.enqueue("mail", {"id": 1})
    [stale] = jr.dequeue("mail", lease="90s")
    clock.shift(timedelta(minutes=2))
    with get_runner_client() as other:
        [fresh] = other.dequeue("mail")
        with pytest.raises(ClaimLost):
            jr.done(stale.id)
        other.done(fresh.id)
    assert status_of(fresh.id) == "completed"


def test_done_after_the_lease_but_before_anyone_took_the_item_back_is_accepted(jr, clock):
    jr.enqueue("mail", {"id": 1})
    [item] = jr.dequeue("mail", lease="90s")
    clock.shift(timedelta(minutes=2))
    jr.done(item.id)
    assert status_of(item.id) == "completed"


def test_maintenance_returns_expired_claims_and_says_how_many(jr, clock):
    QueueFactory(id="mail", max_attempts=3)  # retries allowed
    for n in range(3):
        jr.enqueue("mail", {"n": n})
    jr.dequeue("mail", count=2, lease="90s")
    assert reclaim_expired_leases(NOW + timedelta(seconds=90), batch_size=10) == 2
    assert QueueItem.objects.filter(status="pending").count() == 3


def test_maintenance_returns_expired_claims_in_batches(jr, clock):
    for n in range(3):
        jr.enqueue("mail", {"n": n})
    jr.dequeue("mail", count=3, lease="90s")
    later = NOW + timedelta(minutes=2)
    assert [reclaim_expired_leases(later, batch_size=2) for _ in range(3)] == [2, 1, 0]


def test_a_reclaimed_item_counts_the_attempt_it_lost(jr, clock):
    QueueFactory(id="mail", max_attempts=3)  # retries allowed
    item_id = jr.enqueue("mail", {"id": 1})
    jr.dequeue("mail", lease="90s")
    reclaim_expired_leases(NOW + timedelta(minutes=2))
    stored = QueueItem.objects.get(pk=item_id)
    assert (stored.status, stored.attempts, stored.error) == ("pending", 1, LEASE_EXPIRED_ERROR)
