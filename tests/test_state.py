"""State values through the script client: JSON in and out, TTLs, refusals."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from statestore.models import StateEntry
from tests.moments import NOW

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "value",
    [{"cursor": 5, "ids": [1, 2]}, [1, "two", None], "text", 42, 1.5, True, False],
)
def test_a_value_is_read_back_as_the_same_json_value(jr, value):
    jr.set_state("mail", "cursor", value)
    assert jr.get_state("mail", "cursor") == value


def test_a_string_value_equal_to_its_key_is_stored_as_json(jr):
    jr.set_state("cursor", "cursor", "cursor")
    assert jr.get_state("cursor", "cursor") == "cursor"


def test_an_absent_key_reads_as_none(jr):
    assert jr.get_state("mail", "nothing") is None


def test_setting_a_key_again_replaces_its_value(jr):
    jr.set_state("mail", "cursor", 1)
    jr.set_state("mail", "cursor", 2)
    assert jr.get_state("mail", "cursor") == 2
    assert StateEntry.objects.count() == 1


def test_the_same_key_in_two_namespaces_holds_two_values(jr):
    jr.set_state("mail", "cursor", 1)
    jr.set_state("calendar", "cursor", 2)
    assert (jr.get_state("mail", "cursor"), jr.get_state("calendar", "cursor")) == (1, 2)


def test_a_value_with_a_ttl_is_readable_until_it_expires(jr, clock):
    jr.set_state("mail", "token", "abc", ttl="60m")
    clock.shift(timedelta(minutes=59, seconds=59))
    assert jr.get_state("mail", "token") == "abc"


def test_a_value_reads_as_absent_the_moment_its_ttl_ends(jr, clock):
    jr.set_state("mail", "token", "abc", ttl="60m")
    clock.shift(timedelta(minutes=60))
    assert jr.get_state("mail", "token") is None


@pytest.mark.parametrize(
    "ttl,lifetime",
    [
        ("90s", timedelta(seconds=90)),
        ("60m", timedelta(minutes=60)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
    ],
)
def test_each_ttl_form_sets_the_expiry_it_names(jr, clock, ttl, lifetime):
    jr.set_state("mail", "token", 1, ttl=ttl)
    assert StateEntry.objects.get().expires_at == NOW + lifetime


@pytest.mark.parametrize("ttl", ["1w", "10", "5 m", "1.5h", "-5m", "m", 30, ""])
def test_any_other_ttl_is_refused_naming_the_accepted_forms(jr, ttl):
    with pytest.raises(ValidationError) as refused:
        jr.set_state("mail", "token", 1, ttl=ttl)
    assert "90s, 60m, 24h, 30d" in refused.value.message_dict["ttl"][0]
    assert not StateEntry.objects.exists()


def test_a_zero_ttl_is_refused(jr):
    with pytest.raises(ValidationError, match="longer than zero"):
        jr.set_state("mail", "token", 1, ttl="0s")


@pytest.mark.parametrize("ttl", ["1000000000d", "99999999999999999999s", "9" * 5000 + "s"])
def test_a_ttl_too_long_is_refused_as_too_long(jr, ttl):
    """A number too large is a duration still: the refusal says what is wrong with it."""
    with pytest.raises(ValidationError) as refused:
        jr.set_state("mail", "token", 1, ttl=ttl)
    assert refused.value.message_dict["ttl"][0].endswith("is longer than 1000 years")
    assert not StateEntry.objects.exists()


def test_leading_zeros_do_not_make_a_ttl_too_long(jr, clock):
    jr.set_state("mail", "token", 1, ttl="0000000000090s")
    assert StateEntry.objects.get().expires_at == NOW + timedelta(seconds=90)


def test_setting_a_value_without_a_ttl_removes_an_earlier_expiry(jr, clock):
    jr.set_state("mail", "token", "short", ttl="90s")
    jr.set_state("mail", "token", "forever")
    clock.shift(timedelta(days=365))
    assert jr.get_state("mail", "token") == "forever"


def test_a_new_value_over_an_expired_one_is_readable(jr, clock):
    jr.set_state("mail", "token", "old", ttl="90s")
    clock.shift(timedelta(minutes=5))
    jr.set_state("mail", "token", "new")
    assert jr.get_state("mail", "token") == "new"


def test_deleting_a_key_makes_it_absent(jr):
    jr.set_state("mail", "cursor", 1)
    jr.delete_state("mail", "cursor")
    assert jr.get_state("mail", "cursor") is None


def test_deleting_an_absent_key_is_harmless(jr):
    jr.delete_state("mail", "nothing")
    assert not StateEntry.objects.exists()


@pytest.mark.parametrize(
    "value", [{"when": datetime(2026, 1, 1)}, {1, 2}, float("nan"), float("inf"), object()]
)
def test_a_value_that_is_not_json_is_refused_and_nothing_is_written(jr, value):
    jr.set_state("mail", "cursor", "kept")
    with pytest.raises(ValidationError, match="JSON") as refused:
        jr.set_state("mail", "cursor", value)
    assert "value" in refused.value.message_dict
    assert jr.get_state("mail", "cursor") == "kept"


def test_a_value_with_a_nul_character_is_refused_on_every_database(jr):
    with pytest.raises(ValidationError, match="NUL"):
        jr.set_state("mail", "cursor", "a\x00b")
    assert not StateEntry.objects.exists()


@pytest.mark.parametrize(
    "namespace,key,field",
    [("", "k", "namespace"), ("ns", "", "key"), (None, "k", "namespace"), ("ns", 5, "key")],
)
def test_an_empty_or_non_string_name_is_refused(jr, namespace, key, field):
    with pytest.raises(ValidationError) as refused:
        jr.set_state(namespace, key, 1)
    assert field in refused.value.message_dict


def test_a_key_longer_than_the_column_is_refused_on_every_database(jr):
    with pytest.raises(ValidationError, match="at most 500"):
        jr.set_state("ns", "k" * 501, 1)
