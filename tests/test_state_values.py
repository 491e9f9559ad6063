"""The checks every state and queue value passes, and the text stored for it.

``statestore.values`` decides the common case (plain dicts and lists of ASCII text and
numbers) without its general walk, and encodes a value once (benchmark P4). These
properties hold it to the code it replaced (the general walk alone, and the encoding
and name checks kept here): the same refusals in the same words for any value, and on
both back-ends the same stored JSON as Django's JSONField writes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statestore import operations, values
from statestore.models import StateEntry
from statestore.statements import run
from statestore.values import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    HugeInteger,
    check_json,
    check_name,
    check_text,
    json_problem,
)


class Text(str):
    pass


class Number(int):
    pass


class Mapping(dict):
    pass


class Sequence(list):
    pass


# -- the reference: statestore.values before benchmark P4's round ------------------------


def reference_json_problem(value, strings=True):
    """``json_problem`` by its general walk alone, without the fast path."""
    return values._walk_problem(value, strings)


def reference_check_json(value, field):
    problem = reference_json_problem(value)
    if problem:
        raise ValidationError({field: problem})
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError({field: f"is not JSON-serialisable: {exc}"}) from None
    if len(text) > MAX_JSON_BYTES:
        raise ValidationError(
            {field: f"is {len(text)} bytes as JSON; the limit is {MAX_JSON_BYTES}"}
        )
    return text


def reference_check_name(value, field, max_length):
    if not isinstance(value, str) or not value:
        raise ValidationError({field: f"must be a non-empty string, not {value!r}"})
    if len(value) > max_length:
        raise ValidationError({field: f"must be at most {max_length} characters"})
    check_text(value, field)
    return value


def outcome(check, *args):
    """What a check answers: ("ok", result) or ("refused", its message dict)."""
    try:
        return "ok", check(*args)
    except ValidationError as refused:
        return "refused", refused.message_dict


# -- generated values ----------------------------------------------------------------------

ODD_TEXT = ["", "a\x00b", "\ud800", "x\udfffy", "é", "日本", "\x7f", Text("sub"), Text("a\x00")]
TEXT = st.one_of(st.text(max_size=8), st.sampled_from(ODD_TEXT))
ODD_SCALARS = [
    HugeInteger(5000),
    Number(3),
    b"bytes",
    (1, 2),
    frozenset({1}),
    datetime(2026, 1, 1),
    object(),
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TEXT,
    st.sampled_from(ODD_SCALARS),
    # Integers at the limit of 4300 digits (built here: they have no repr to show).
    st.sampled_from([1, -1, 0]).map(lambda n: 10**4300 - 1 + n if n else -(10**4300)),
)
KEYS = st.one_of(TEXT, st.sampled_from([1, -2, 2.5, float("nan"), None, True, (1,), Number(4)]))


def containers(children):
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        st.lists(children, max_size=3).map(Sequence),
        st.dictionaries(TEXT, children, max_size=3).map(Mapping),
    )


def nest(value, levels, in_dict):
    for _ in range(levels):
        value = {"k": value} if in_dict else [value]
    return value


ANY_VALUE = st.recursive(SCALARS, containers, max_leaves=16)
VALUES = st.one_of(
    ANY_VALUE,
    st.builds(nest, ANY_VALUE, st.integers(MAX_JSON_DEPTH - 4, MAX_JSON_DEPTH + 2), st.booleans()),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
JSON_TEXT = st.one_of(
    st.text(st.characters(exclude_characters="\x00"), max_size=8),
    st.sampled_from(["é", "日本", "\x7f", 'a"b\\c']),
)
JSON_VALUES = st.recursive(
    st.one_of(JSON_SCALARS, JSON_TEXT),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(JSON_TEXT, children, max_size=4)
    ),
    max_leaves=16,
)


# -- the checks against the reference -----------------------------------------------------


@settings(max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES, strings=st.booleans())
def test_a_values_problem_is_named_as_the_reference_names_it(value, strings):
    assert json_problem(value, strings) == reference_json_problem(value, strings)


@settings(max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_a_value_is_refused_or_encoded_as_the_reference_and_stored_as_jsonfield_stores_it(
    value,
):
    mine = outcome(check_json, value, "value")
    reference = outcome(reference_check_json, value, "value")
    assert mine[0] == reference[0]
    if mine[0] == "refused":
        assert mine[1] == reference[1]
    else:
        assert mine[1] == json.dumps(value)  # django.db.backends.base adapt_json_value


@settings(max_examples=300, derandomize=True)
@given(value=st.one_of(TEXT, st.text(min_size=490, max_size=510), st.sampled_from([None, 5])))
def test_a_name_is_accepted_or_refused_as_the_reference_does(value):
    assert outcome(check_name, value, "key", 500) == outcome(
        reference_check_name, value, "key", 500
    )


def test_a_value_is_sized_as_compact_json_even_when_stored_with_spaces():
    fits = [0] * ((MAX_JSON_BYTES - 1) // 2)  # compact text at most the limit; stored, more
    assert len(json.dumps(fits, separators=(",", ":"))) <= MAX_JSON_BYTES < len(json.dumps(fits))
    assert check_json(fits, "value") == json.dumps(fits)
    too_big = [0] * ((MAX_JSON_BYTES + 1) // 2)
    with pytest.raises(ValidationError) as refused:
        check_json(too_big, "value")
    size = len(json.dumps(too_big, separators=(",", ":")))
    assert refused.value.message_dict == {
        "value": [f"is {size} bytes as JSON; the limit is {MAX_JSON_BYTES}"]
    }


def test_a_cycle_is_refused_as_too_deep():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(ValidationError, match=f"more than {MAX_JSON_DEPTH} levels"):
        check_json(cycle, "value")


# -- what reaches the database --------------------------------------------------------------


def stored_text(namespace: str) -> object:
    rows = run(
        connection,
        "SELECT value FROM state WHERE namespace = %s AND key = %s",
        [namespace, "k"],
        lambda cursor: cursor.fetchall(),
    )
    (row,) = rows
    return row[0]


@pytest.mark.django_db
@settings(max_examples=60, derandomize=True, deadline=None)
@given(value=JSON_VALUES)
def test_the_stored_json_is_what_the_orm_stores_on_every_database(value):
    StateEntry.objects.all().delete()
    operations.set_state("client", "k", value)
    StateEntry.objects.create(namespace="orm", key="k", value=value)
    assert stored_text("client") == stored_text("orm")
    # Not always ``value``: PostgreSQL's jsonb reads 6.4e+16 back as an integer.
    assert operations.get_state("client", "k") == StateEntry.objects.get(namespace="orm").value


@pytest.mark.django_db
def test_a_failing_statement_raises_djangos_error_caused_by_the_drivers():
    connection.ensure_connection()
    with pytest.raises(DatabaseError) as failed:
        run(connection, "SELECT nothing FROM no_such_table", [], lambda cursor: None)
    assert type(failed.value).__module__ == "django.db.utils"
    assert type(failed.value.__cause__).__module__.split(".")[0] in ("sqlite3", "psycopg")


@pytest.mark.django_db
def test_a_write_stamps_both_timestamps_with_the_one_moment(clock):
    operations.set_state("ns", "k", 1)
    entry = StateEntry.objects.get()
    assert entry.created_at == entry.updated_at == datetime.now(UTC)
