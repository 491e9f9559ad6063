"""Two hand-written statements for the calls scripts make most: upsert and read one value.

Building these with the ORM cost ~150 us of Python per call, ten times the
statement itself on SQLite (benchmark P4). The SQL is the same on SQLite and
PostgreSQL (``INSERT ... ON CONFLICT`` exists on both), runs on Django's
connection (so transactions and errors behave as everywhere else; on SQLite the
short way, ``statestore.statements``), and values are adapted by the back-end's
own adapters: a JSON field's, and the datetime adapter for timestamps (which
come aware, from ``timezone.now``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import CharField, DateTimeField, Field, JSONField, Model

from statestore.statements import adapt_datetime, run

Adapter = Callable[[Any, Any], Any]


def upsert(
    model: type[Model], values: Mapping[str, Any], unique: Sequence[str], update: Sequence[str]
) -> None:
    """Insert a row, or on a conflict over ``unique`` set the ``update`` columns (none: skip)."""
    conn = connections[DEFAULT_DB_ALIAS]
    sql, adapters = _upsert_sql(conn.vendor, model, tuple(values), tuple(unique), tuple(update))
    params = [adapt(value, conn) for adapt, value in zip(adapters, values.values(), strict=True)]
    run(conn, sql, params, _nothing)


def read_live(model: type[Model], lookup: Mapping[str, str], now: datetime) -> tuple[bool, Any]:
    """``(found, value)`` of the one row matching ``lookup`` whose expiry is after ``now``."""
    conn = connections[DEFAULT_DB_ALIAS]
    sql = _read_sql(model, tuple(lookup))
    row = run(conn, sql, [*lookup.values(), adapt_datetime(now, conn)], _fetchone)
    if row is None:
        return False, None
    return True, _value_field(model).from_db_value(row[0], None, conn)


def _nothing(cursor: Any) -> None:
    return None


def _fetchone(cursor: Any) -> Any:
    return cursor.fetchone()


@lru_cache(maxsize=8)
def _value_field(model: type[Model]) -> Field:
    return model._meta.get_field("value")


def _adapter(vendor: str, model: type[Model], name: str) -> Adapter:
    """How a column's value is sent: Django's adapter, or the same result the short way."""
    field = model._meta.get_field(name)
    if isinstance(field, DateTimeField):
        return adapt_datetime
    if isinstance(field, CharField):
        return lambda value, conn: (
            value if isinstance(value, str) else field.get_db_prep_save(value, conn)
        )
    if isinstance(field, JSONField) and vendor == "sqlite" and field.encoder is None:
        # JSONField.get_db_prep_save: None is SQL NULL, else adapt_json_value's json.dumps.
        return lambda value, conn: None if value is None else json.dumps(value)
    return field.get_db_prep_save


@lru_cache(maxsize=32)
def _upsert_sql(
    vendor: str,
    model: type[Model],
    columns: tuple[str, ...],
    unique: tuple[str, ...],
    update: tuple[str, ...],
) -> tuple[str, list[Adapter]]:
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    conflict = (
        "DO UPDATE SET " + ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update)
        if update
        else "DO NOTHING"
    )
    sql = (
        f"INSERT INTO {q(model._meta.db_table)} ({', '.join(map(q, columns))}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(map(q, unique))}) {conflict}"
    )
    return sql, [_adapter(vendor, model, name) for name in columns]


@lru_cache(maxsize=32)
def _read_sql(model: type[Model], lookup: tuple[str, ...]) -> str:
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    where = " AND ".join(f"{q(c)} = %s" for c in lookup)
    return (
        f"SELECT {q('value')} FROM {q(model._meta.db_table)} WHERE {where} "
        f"AND ({q('expires_at')} IS NULL OR {q('expires_at')} > %s)"
    )
