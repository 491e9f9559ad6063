"""State and collection operations: what the script client, the admin and the API call.

Values are JSON values in and out. A value or item past its ``expires_at`` reads
as absent at once; maintenance deletes it later. Time comes from
``statestore.runtime.now`` (Django's ``timezone.now``, its setting read once),
the clock tests freeze. Single-row reads and writes go through
``statestore.sql``; the rest through the ORM.
"""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction

from jeeves_site.echo import echoed
from statestore.models import StateEntry, StateItem
from statestore.runtime import now
from statestore.sql import read_live, write_value
from statestore.ttl import expiry
from statestore.values import check_count, check_json, check_name

NAMESPACE_MAX = 200
KEY_MAX = 500


def _check_key(namespace: object, key: object) -> None:
    check_name(namespace, "namespace", NAMESPACE_MAX)
    check_name(key, "key", KEY_MAX)


def _check_item_key(namespace: object, key: object, item_key: object) -> None:
    _check_key(namespace, key)
    check_name(item_key, "item_key", KEY_MAX)


# -- values ------------------------------------------------------------------------------


def get_state(namespace: str, key: str) -> Any:
    """The value at (namespace, key), or None when absent or expired."""
    _check_key(namespace, key)
    return read_live(StateEntry, (namespace, key), now())[1]


def set_state(namespace: str, key: str, value: Any, ttl: str | None = None) -> None:
    """Store ``value`` at (namespace, key); with ``ttl`` it expires, without it never does."""
    _check_key(namespace, key)
    text = check_json(value, "value")
    moment = now()
    write_value(StateEntry, (namespace, key), value, text, expiry(ttl, moment), moment)


def delete_state(namespace: str, key: str) -> bool:
    """Remove the value at (namespace, key); the key's collection items stay. True if it existed."""
    _check_key(namespace, key)
    deleted, _ = StateEntry.objects.filter(namespace=namespace, key=key).delete()
    return deleted > 0


# -- collections -------------------------------------------------------------------------


def _items(namespace: str, key: str):
    return StateItem.objects.filter(namespace=namespace, key=key)


def has_item(namespace: str, key: str, item_key: str) -> bool:
    """Whether the collection at (namespace, key) holds a live ``item_key``."""
    _check_item_key(namespace, key, item_key)
    return read_live(StateItem, (namespace, key, item_key), now())[0]


def get_item(namespace: str, key: str, item_key: str) -> Any:
    """The item's value, or None when it is absent, expired or stored without a value."""
    _check_item_key(namespace, key, item_key)
    return read_live(StateItem, (namespace, key, item_key), now())[1]


def set_item(
    namespace: str, key: str, item_key: str, value: Any = None, ttl: str | None = None
) -> None:
    """Add or replace an item of the collection at (namespace, key), creating the key."""
    _check_item_key(namespace, key, item_key)
    text = check_json(value, "value")
    moment = now()
    expires_at = expiry(ttl, moment)
    with transaction.atomic():
        write_value(StateEntry, (namespace, key), None, None, None, moment, replace=False)
        write_value(StateItem, (namespace, key, item_key), value, text, expires_at, moment)


def delete_item(namespace: str, key: str, item_key: str) -> bool:
    """Remove one item; True if it existed."""
    _check_item_key(namespace, key, item_key)
    deleted, _ = _items(namespace, key).filter(item_key=item_key).delete()
    return deleted > 0


def count_items(namespace: str, key: str) -> int:
    """How many live items the collection holds."""
    _check_key(namespace, key)
    return _items(namespace, key).live(now()).count()


def prune_items(namespace: str, key: str, keep: int) -> int:
    """Keep the ``keep`` most recently updated live items, delete the rest; return how many."""
    _check_key(namespace, key)
    check_count(keep, "keep", minimum=0)
    with transaction.atomic():
        newest = (
            _items(namespace, key).live(now()).order_by("-updated_at", "-id").values("id")[:keep]
        )
        deleted, _ = _items(namespace, key).exclude(id__in=newest).delete()
    return deleted


def list_item_keys(
    namespace: str, key: str, limit: int | None = None, order: Literal["asc", "desc"] = "desc"
) -> list[str]:
    """Live item keys by last update, newest first (``order="desc"``) or oldest first."""
    _check_key(namespace, key)
    if limit is not None:
        check_count(limit, "limit", minimum=0)
    if order not in ("asc", "desc"):
        raise ValidationError({"order": f"must be 'asc' or 'desc', not {echoed(order)}"})
    ordering = ("updated_at", "id") if order == "asc" else ("-updated_at", "-id")
    keys = _items(namespace, key).live(now()).order_by(*ordering).values_list("item_key", flat=True)
    return list(keys if limit is None else keys[:limit])
