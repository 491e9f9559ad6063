"""De-duplication by a JSONPath into the payload, in the queue's scope."""

from __future__ import annotations

import pytest

from queues.models import QueueItem
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db


def dedup_queue(scope: str = "pending", path: str = "$.threadId", **kwargs):
    return QueueFactory(id="mail", dedup_config={"path": path, "scope": scope}, **kwargs)


def test_a_duplicate_of_a_pending_item_is_not_enqueued(jr):
    dedup_queue()
    jr.enqueue("mail", {"threadId": "t1", "n": 1})
    assert jr.enqueue("mail", {"threadId": "t1", "n": 2}) is None
    assert QueueItem.objects.count() == 1


def test_a_duplicate_of_a_claimed_item_is_not_enqueued(jr):
    dedup_queue()
    jr.enqueue("mail", {"threadId": "t1"})
    jr.dequeue("mail")
    assert jr.enqueue("mail", {"threadId": "t1"}) is None


def test_in_pending_scope_a_completed_item_does_not_block_its_key(jr):
    dedup_queue("pending")
    jr.enqueue("mail", {"threadId": "t1"})
    [item] = jr.dequeue("mail")
    jr.done(item.id)
    assert jr.enqueue("mail", {"threadId": "t1"}) is not None


def test_in_all_scope_a_completed_item_blocks_its_key(jr):
    dedup_queue("all")
    jr.enqueue("mail", {"threadId": "t1"})
    [item] = jr.dequeue("mail")
    jr.done(item.id)
    assert jr.enqueue("mail", {"threadId": "t1"}) is None


def test_in_all_scope_a_failed_item_does_not_block_its_key(jr):
    dedup_queue("all", max_attempts=1)
    jr.enqueue("mail", {"threadId": "t1"})
    [item] = jr.dequeue("mail")
    jr.fail(item.id, "gave up")
    assert jr.enqueue("mail", {"threadId": "t1"}) is not None


def test_the_scope_defaults_to_pending(jr):
    QueueFactory(id="mail", dedup_config={"path": "$.threadId"})
    jr.enqueue("mail", {"threadId": "t1"})
    [item] = jr.dequeue("mail")
    jr.done(item.id)
    assert jr.enqueue("mail", {"threadId": "t1"}) is not None


def test_different_keys_are_both_enqueued(jr):
    dedup_queue()
    assert jr.enqueue("mail", {"threadId": "t1"}) is not None
    assert jr.enqueue("mail", {"threadId": "t2"}) is not None


def test_a_payload_the_path_finds_nothing_in_is_never_a_duplicate(jr):
    dedup_queue()
    jr.enqueue("mail", {"other": 1})
    assert jr.enqueue("mail", {"other": 1}) is not None


def test_a_null_key_is_never_a_duplicate(jr):
    dedup_queue()
    jr.enqueue("mail", {"threadId": None})
    assert jr.enqueue("mail", {"threadId": None}) is not None


def test_the_same_key_in_another_queue_is_not_a_duplicate(jr):
    dedup_queue()
    QueueFactory(id="other", dedup_config={"path": "$.threadId"})
    jr.enqueue("mail", {"threadId": "t1"})
    assert jr.enqueue("other", {"threadId": "t1"}) is not None


def test_a_nested_path_picks_the_key(jr):
    dedup_queue(path="$.message.id")
    jr.enqueue("mail", {"message": {"id": 7, "body": "a"}})
    assert jr.enqueue("mail", {"message": {"id": 7, "body": "b"}}) is None


def test_an_object_key_is_compared_whatever_its_key_order(jr):
    dedup_queue(path="$.ref")
    jr.enqueue("mail", {"ref": {"repo": "a", "n": 1}})
    assert jr.enqueue("mail", {"ref": {"n": 1, "repo": "a"}}) is None


def test_a_very_long_key_is_stored_as_its_digest_and_still_deduplicates(jr):
    dedup_queue()
    jr.enqueue("mail", {"threadId": "t" * 2000})
    assert QueueItem.objects.get().dedup_key.startswith("sha256:")
    assert jr.enqueue("mail", {"threadId": "t" * 2000}) is None
