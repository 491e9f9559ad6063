"""The short way of running a hand-written statement (``statestore.statements``).

It must behave as Django's cursor does, on both back-ends: the same exceptions, a
broken transaction refused, statements still counted while queries are logged, and
timestamps stored as Django's own adapter stores them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError
from hypothesis import given, settings
from hypothesis import strategies as st

from statestore import operations
from statestore.statements import adapt_datetime, run

pytestmark = pytest.mark.django_db

INSERT = (
    "INSERT INTO state (namespace, key, value, expires_at, created_at, updated_at) "
    "VALUES (%s, %s, %s, NULL, %s, %s)"
)


def insert(key: str) -> None:
    moment = adapt_datetime(datetime(2026, 1, 1, tzinfo=UTC), connection)
    run(connection, INSERT, ["ns", key, '"v"', moment, moment], lambda cursor: None)


def test_a_statement_runs_and_its_result_is_read():
    connection.ensure_connection()
    insert("a")
    rows = run(connection, "SELECT key FROM state WHERE namespace = %s", ["ns"], list)
    assert [tuple(row) for row in rows] == [("a",)]


def test_a_constraint_violation_raises_djangos_integrity_error():
    connection.ensure_connection()
    insert("a")
    with pytest.raises(IntegrityError), transaction.atomic():
        insert("a")


def test_a_statement_in_a_broken_transaction_is_refused():
    connection.ensure_connection()
    insert("a")
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):
            insert("a")  # without a savepoint the whole transaction is now broken
        with pytest.raises(TransactionManagementError):
            insert("b")


def test_statements_are_counted_while_queries_are_logged(django_assert_num_queries):
    connection.ensure_connection()
    with django_assert_num_queries(2):
        operations.set_state("ns", "k", 1)
        assert operations.get_state("ns", "k") == 1


def test_a_percent_sign_in_a_statement_is_kept():
    connection.ensure_connection()
    rows = run(connection, "SELECT 'a%%b', %s", ["c"], lambda cursor: cursor.fetchall())
    assert tuple(rows[0]) == ("a%b", "c")


ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata"), timezone(timedelta(hours=-3))]


@settings(derandomize=True)
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    zone=st.sampled_from(ZONES),
)
def test_timestamps_are_adapted_as_djangos_adapter_adapts_them(moment, zone):
    aware = moment.replace(tzinfo=zone)
    assert adapt_datetime(aware, connection) == connection.ops.adapt_datetimefield_value(aware)


def test_no_timestamp_is_null():
    assert adapt_datetime(None, connection) is None


def test_statements_are_logged_once_debug_is_turned_on_and_not_after(settings):
    connection.ensure_connection()
    operations.get_state("ns", "k")  # DEBUG read while off
    settings.DEBUG = True
    connection.queries_log.clear()
    operations.set_state("ns", "k", 1)
    assert [query["sql"] for query in connection.queries if "INSERT" in query["sql"]]
    settings.DEBUG = False
    connection.queries_log.clear()
    operations.set_state("ns", "k", 2)
    assert not connection.queries_log
