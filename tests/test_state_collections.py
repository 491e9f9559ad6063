"""Collections through the script client: items, counts, pruning, listing, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from statestore.models import StateEntry, StateItem

pytestmark = pytest.mark.django_db


def add_items(jr, clock, *item_keys: str) -> None:
    """Add items one second apart, so their update order is their argument order."""
    for item_key in item_keys:
        jr.set_item("mail", "seen", item_key)
        clock.shift(timedelta(seconds=1))


def test_an_item_set_without_a_value_is_present(jr):
    jr.set_item("mail", "seen", "m1")
    assert jr.has_item("mail", "seen", "m1")


def test_an_item_set_without_a_value_reads_as_none(jr):
    jr.set_item("mail", "seen", "m1")
    assert jr.get_item("mail", "seen", "m1") is None


def test_an_items_value_is_read_back_as_json(jr):
    jr.set_item("mail", "seen", "m1", {"subject": "hi", "size": 3})
    assert jr.get_item("mail", "seen", "m1") == {"subject": "hi", "size": 3}


def test_an_item_value_equal_to_its_item_key_is_stored_as_json(jr):
    jr.set_item("seen", "seen", "seen", "seen")
    assert jr.get_item("seen", "seen", "seen") == "seen"


def test_an_absent_item_is_not_present(jr):
    assert not jr.has_item("mail", "seen", "m1")


def test_setting_an_item_creates_its_parent_key(jr):
    jr.set_item("mail", "seen", "m1")
    assert StateEntry.objects.filter(namespace="mail", key="seen").exists()


def test_setting_an_item_keeps_the_parent_keys_value(jr):
    jr.set_state("mail", "seen", {"since": 5})
    jr.set_item("mail", "seen", "m1")
    assert jr.get_state("mail", "seen") == {"since": 5}


def test_setting_an_item_again_replaces_its_value(jr):
    jr.set_item("mail", "seen", "m1", 1)
    jr.set_item("mail", "seen", "m1", 2)
    assert jr.get_item("mail", "seen", "m1") == 2
    assert jr.count_items("mail", "seen") == 1


def test_deleting_an_item_removes_only_that_item(jr):
    jr.set_item("mail", "seen", "m1")
    jr.set_item("mail", "seen", "m2")
    jr.delete_item("mail", "seen", "m1")
    assert (jr.has_item("mail", "seen", "m1"), jr.has_item("mail", "seen", "m2")) == (False, True)


def test_count_items_counts_one_collection(jr):
    for item_key in ("a", "b", "c"):
        jr.set_item("mail", "seen", item_key)
    jr.set_item("mail", "other", "a")
    assert jr.count_items("mail", "seen") == 3


def test_an_empty_collection_counts_zero(jr):
    assert jr.count_items("mail", "seen") == 0


def test_an_expired_item_reads_as_absent(jr, clock):
    jr.set_item("mail", "seen", "m1", "v", ttl="90s")
    clock.shift(timedelta(seconds=90))
    assert (jr.has_item("mail", "seen", "m1"), jr.get_item("mail", "seen", "m1")) == (False, None)


def test_an_expired_item_is_not_counted_or_listed(jr, clock):
    jr.set_item("mail", "seen", "short", ttl="90s")
    jr.set_item("mail", "seen", "long", ttl="24h")
    clock.shift(timedelta(minutes=2))
    assert jr.count_items("mail", "seen") == 1
    assert jr.list_item_keys("mail", "seen") == ["long"]


def test_an_item_ttl_outside_the_accepted_forms_is_refused(jr):
    with pytest.raises(ValidationError, match="90s, 60m, 24h, 30d"):
        jr.set_item("mail", "seen", "m1", ttl="2 days")
    assert not StateItem.objects.exists()
    assert not StateEntry.objects.exists()


def test_an_item_value_that_is_not_json_is_refused_and_nothing_is_written(jr):
    with pytest.raises(ValidationError, match="JSON"):
        jr.set_item("mail", "seen", "m1", {"at": datetime(2026, 1, 1)})
    assert not StateItem.objects.exists()
    assert not StateEntry.objects.exists()


def test_an_empty_item_key_is_refused(jr):
    with pytest.raises(ValidationError) as refused:
        jr.set_item("mail", "seen", "")
    assert "item_key" in refused.value.message_dict


def test_item_keys_are_listed_newest_first(jr, clock):
    add_items(jr, clock, "a", "b", "c")
    assert jr.list_item_keys("mail", "seen") == ["c", "b", "a"]


def test_item_keys_can_be_listed_oldest_first(jr, clock):
    add_items(jr, clock, "a", "b", "c")
    assert jr.list_item_keys("mail", "seen", order="asc") == ["a", "b", "c"]


def test_listing_item_keys_honours_the_limit(jr, clock):
    add_items(jr, clock, "a", "b", "c")
    assert jr.list_item_keys("mail", "seen", limit=2) == ["c", "b"]


def test_updating_an_item_makes_it_the_newest(jr, clock):
    add_items(jr, clock, "a", "b", "a")
    assert jr.list_item_keys("mail", "seen") == ["a", "b"]


def test_an_unknown_listing_order_is_refused(jr):
    with pytest.raises(ValidationError) as refused:
        jr.list_item_keys("mail", "seen", order="newest")
    assert "order" in refused.value.message_dict


def test_a_negative_listing_limit_is_refused(jr):
    with pytest.raises(ValidationError) as refused:
        jr.list_item_keys("mail", "seen", limit=-1)
    assert "limit" in refused.value.message_dict


def test_pruning_keeps_the_most_recently_updated_items(jr, clock):
    add_items(jr, clock, "a", "b", "c", "d", "b")
    assert jr.prune_items("mail", "seen", 2) == 2
    assert jr.list_item_keys("mail", "seen") == ["b", "d"]


def test_pruning_to_zero_empties_the_collection(jr, clock):
    add_items(jr, clock, "a", "b")
    assert jr.prune_items("mail", "seen", 0) == 2
    assert jr.count_items("mail", "seen") == 0


def test_pruning_a_small_collection_deletes_nothing(jr, clock):
    add_items(jr, clock, "a", "b")
    assert jr.prune_items("mail", "seen", 5) == 0


def test_pruning_leaves_other_collections_alone(jr, clock):
    add_items(jr, clock, "a", "b")
    jr.set_item("mail", "other", "x")
    jr.prune_items("mail", "seen", 0)
    assert jr.has_item("mail", "other", "x")


@pytest.mark.parametrize("keep", [-1, 1.5, "2", True])
def test_a_keep_count_that_is_not_a_non_negative_integer_is_refused(jr, keep):
    jr.set_item("mail", "seen", "a")
    with pytest.raises(ValidationError) as refused:
        jr.prune_items("mail", "seen", keep)
    assert "keep" in refused.value.message_dict
    assert jr.count_items("mail", "seen") == 1
