"""Two hand-written statements for the calls scripts make most: write and read one value.

Building these with the ORM cost ~150 us of Python per call, ten times the
statement itself on SQLite (benchmark P4). The SQL is the same on SQLite and
PostgreSQL (``INSERT ... ON CONFLICT`` exists on both), runs on Django's
connection (so transactions and errors behave as everywhere else; on SQLite the
short way, ``statestore.statements``), and is made once per model. Values are
sent as the back-end's own adapters send them: on SQLite the JSON text
``check_json`` made (JSONField's ``json.dumps``), elsewhere the JSON field's
adapter; timestamps (aware, from ``timezone.now``) formatted once per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, UniqueConstraint

from statestore.statements import adapt_datetime, run


def write_value(
    model: type[Model],
    names: Sequence[str],
    value: Any,
    text: str | None,
    expires_at: datetime | None,
    moment: datetime,
    replace: bool = True,
) -> None:
    """Insert ``model``'s row at ``names`` (its unique columns' values, in order).

    The row holds ``value`` (``text``: its JSON as ``check_json`` made it; None is SQL
    NULL, as JSONField stores it), ``expires_at``, and ``moment`` as both timestamps.
    Over an existing row it sets the value, the expiry and ``updated_at``, or with
    ``replace=False`` leaves the row as it is.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if value is None:
        stored = None
    elif conn.vendor == "sqlite":
        stored = text
    else:
        stored = _value_field(model).get_db_prep_save(value, conn)
    stamp = adapt_datetime(moment, conn)
    expires = None if expires_at is None else adapt_datetime(expires_at, conn)
    run(conn, _write_sql(model, replace), [*names, stored, expires, stamp, stamp], _nothing)


def read_live(model: type[Model], names: Sequence[str], now: datetime) -> tuple[bool, Any]:
    """``(found, value)`` of ``model``'s row at ``names`` (as for ``write_value``) whose
    expiry is after ``now``."""
    conn = connections[DEFAULT_DB_ALIAS]
    row = run(conn, _read_sql(model), [*names, adapt_datetime(now, conn)], _fetchone)
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


def _key_columns(model: type[Model]) -> list[str]:
    (unique,) = [c for c in model._meta.constraints if isinstance(c, UniqueConstraint)]
    return list(unique.fields)


@lru_cache(maxsize=8)
def _write_sql(model: type[Model], replace: bool) -> str:
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    keys = _key_columns(model)
    columns = [*keys, "value", "expires_at", "created_at", "updated_at"]
    update = ("value", "expires_at", "updated_at")
    conflict = (
        "DO UPDATE SET " + ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update)
        if replace
        else "DO NOTHING"
    )
    return (
        f"INSERT INTO {q(model._meta.db_table)} ({', '.join(map(q, columns))}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(map(q, keys))}) {conflict}"
    )


@lru_cache(maxsize=8)
def _read_sql(model: type[Model]) -> str:
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    where = " AND ".join(f"{q(c)} = %s" for c in _key_columns(model))
    return (
        f"SELECT {q('value')} FROM {q(model._meta.db_table)} WHERE {where} "
        f"AND ({q('expires_at')} IS NULL OR {q('expires_at')} > %s)"
    )
