"""State over HTTP: namespaces, values, a key with its items, writes with TTL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from statestore import operations
from statestore.models import StateEntry, StateItem

pytestmark = pytest.mark.django_db


def test_the_namespace_list_names_every_namespace_with_live_data(api):
    operations.set_state("mail", "cursor", 1)
    operations.set_item("calendar", "seen", "e1")
    operations.set_state("old", "gone", 1, ttl="1s")
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        assert api.get("/state").json() == {"namespaces": ["calendar", "mail"]}


def test_a_namespace_reads_as_a_map_of_its_values(api):
    operations.set_state("mail", "cursor", {"uid": 7})
    operations.set_state("mail", "last", "2026-03-01")
    assert api.get("/state/mail").json() == {"cursor": {"uid": 7}, "last": "2026-03-01"}


def test_an_empty_namespace_reads_as_an_empty_map(api):
    assert api.get("/state/nothing").json() == {}


def test_a_key_shows_its_value_and_its_newest_items(api):
    operations.set_state("mail", "seen", {"since": 1})
    for item_key in ("m1", "m2", "m3"):
        operations.set_item("mail", "seen", item_key, {"subject": item_key})
    body = api.get("/state/mail/seen?limit=2").json()
    assert body["value"] == {"since": 1}
    assert [item["itemKey"] for item in body["items"]] == ["m3", "m2"]
    assert (body["count"], body["total"]) == (2, 3)


def test_an_unknown_key_is_404(api):
    assert api.get("/state/mail/nothing").status_code == 404


def test_setting_a_value_stores_it(api):
    assert api.put("/state/mail/cursor", {"value": [1, 2]}).json() == {"ok": True}
    assert operations.get_state("mail", "cursor") == [1, 2]


@pytest.mark.parametrize("ttl", ["9" * 100_000 + "s", "x" * 100_000])
def test_a_refused_ttl_is_named_by_its_start_and_size(api, ttl):
    response = api.put("/state/mail/cursor", {"value": 1, "ttl": ttl})
    assert response.status_code == 400
    reason = str(response.json()["fields"]["ttl"])
    assert len(reason) < 300
    assert f"({len(ttl)} characters)" in reason


def test_a_value_set_with_a_ttl_expires(api):
    api.put("/state/mail/cursor", {"value": 1, "ttl": "60m"})
    assert api.get("/state/mail/cursor").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        assert api.get("/state/mail/cursor").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "value"), ({"value": 1, "ttl": "forever"}, "ttl"), ({"value": 1, "ttl": "0s"}, "ttl"),
     ({"value": "a\u0000b"}, "value"), ({"value": 1, "colour": 2}, "colour")],
)  # fmt: skip
def test_setting_a_value_refuses_a_bad_field_by_name(api, body, field):
    response = api.put("/state/mail/cursor", body)
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not StateEntry.objects.exists()


def test_a_namespace_that_is_too_long_is_400(api):
    response = api.put(f"/state/{'n' * 300}/cursor", {"value": 1})
    assert response.status_code == 400 and "namespace" in response.json()["fields"]


def test_deleting_a_value_removes_it(api):
    operations.set_state("mail", "cursor", 1)
    assert api.delete("/state/mail/cursor").json() == {"ok": True}
    assert operations.get_state("mail", "cursor") is None


def test_deleting_a_value_that_is_not_there_is_404(api):
    assert api.delete("/state/mail/cursor").status_code == 404


def test_setting_an_item_stores_it_under_the_key(api):
    assert api.put("/state/mail/seen/items/m1", {"value": {"at": 1}}).json() == {"ok": True}
    assert api.get("/state/mail/seen/items/m1").json() == {"itemKey": "m1", "value": {"at": 1}}


def test_an_item_may_be_set_without_a_body(api):
    api.put("/state/mail/seen/items/m1")
    assert operations.has_item("mail", "seen", "m1")


def test_an_item_set_with_a_ttl_expires(api):
    api.put("/state/mail/seen/items/m1", {"ttl": "30d"})
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        assert api.get("/state/mail/seen/items/m1").status_code == 404


def test_an_item_with_a_bad_ttl_is_400(api):
    response = api.put("/state/mail/seen/items/m1", {"ttl": "-1d"})
    assert response.status_code == 400 and "ttl" in response.json()["fields"]
    assert not StateItem.objects.exists()


def test_an_unknown_item_is_404(api):
    assert api.get("/state/mail/seen/items/m1").status_code == 404


def test_deleting_an_item_removes_it(api):
    operations.set_item("mail", "seen", "m1")
    assert api.delete("/state/mail/seen/items/m1").json() == {"ok": True}
    assert not operations.has_item("mail", "seen", "m1")


def test_deleting_an_item_that_is_not_there_is_404(api):
    assert api.delete("/state/mail/seen/items/m1").status_code == 404
