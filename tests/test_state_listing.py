"""What the admin and API see of the state store, and maintenance of expired state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statestore import operations as state
from statestore.listing import key_detail, list_namespaces, namespace_values
from statestore.maintenance import purge_expired_state
from statestore.models import StateEntry, StateItem
from tests.moments import NOW

pytestmark = pytest.mark.django_db


def test_namespaces_are_listed_once_each_in_order(clock):
    state.set_state("mail", "cursor", 1)
    state.set_state("mail", "token", 2)
    state.set_item("calendar", "seen", "e1")
    assert list_namespaces() == ["calendar", "mail"]


def test_a_namespace_holding_only_expired_state_is_not_listed(clock):
    state.set_state("old", "cursor", 1, ttl="90s")
    state.set_state("mail", "cursor", 1)
    clock.shift(timedelta(minutes=2))
    assert list_namespaces() == ["mail"]


def test_a_namespaces_values_are_given_by_key(clock):
    state.set_state("mail", "cursor", 5)
    state.set_state("mail", "token", "abc")
    state.set_state("calendar", "cursor", 9)
    assert namespace_values("mail") == {"cursor": 5, "token": "abc"}


def test_a_namespaces_values_leave_out_expired_ones(clock):
    state.set_state("mail", "cursor", 5)
    state.set_state("mail", "token", "abc", ttl="90s")
    clock.shift(timedelta(minutes=2))
    assert namespace_values("mail") == {"cursor": 5}


def test_a_keys_detail_has_its_value_and_newest_items(clock):
    state.set_state("mail", "seen", {"since": 1}, ttl="24h")
    for item_key in ("a", "b", "c"):
        state.set_item("mail", "seen", item_key, item_key.upper())
        clock.shift(timedelta(seconds=1))
    detail = key_detail("mail", "seen", limit=2)
    assert (detail["value"], detail["expires_at"]) == ({"since": 1}, NOW + timedelta(hours=24))
    assert detail["item_count"] == 3
    assert [(i["item_key"], i["value"]) for i in detail["items"]] == [("c", "C"), ("b", "B")]


def test_an_unknown_key_has_no_detail():
    assert key_detail("mail", "nothing") is None


def test_purging_deletes_expired_values_and_items_only(clock):
    state.set_state("mail", "token", 1, ttl="90s")
    state.set_state("mail", "cursor", 2)
    state.set_item("mail", "seen", "short", ttl="60m")
    state.set_item("mail", "seen", "long", ttl="30d")
    assert purge_expired_state(NOW + timedelta(hours=1), batch_size=100) == 2
    assert set(StateEntry.objects.values_list("key", flat=True)) == {"cursor", "seen"}
    assert list(StateItem.objects.values_list("item_key", flat=True)) == ["long"]


def test_purging_works_in_batches_of_the_size_given(clock):
    for n in range(5):
        state.set_state("mail", f"k{n}", n, ttl="90s")
    later = NOW + timedelta(minutes=2)
    assert [purge_expired_state(later, batch_size=2) for _ in range(4)] == [2, 2, 1, 0]
