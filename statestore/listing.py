"""Read-only views of the state store for the admin and the HTTP API.

Expired values and items are left out, as everywhere else.
"""

from __future__ import annotations

from typing import Any

from django.utils.timezone import now

from statestore.models import StateEntry, StateItem
from statestore.operations import KEY_MAX, NAMESPACE_MAX
from statestore.values import check_count, check_name


def list_namespaces() -> list[str]:
    """Every namespace holding a live value or item, sorted."""
    moment = now()
    names = set(StateEntry.objects.live(moment).values_list("namespace", flat=True).distinct())
    names.update(StateItem.objects.live(moment).values_list("namespace", flat=True).distinct())
    return sorted(names)


def namespace_values(namespace: str, limit: int = 1000) -> dict[str, Any]:
    """The live values of a namespace by key (at most ``limit``, in key order)."""
    check_name(namespace, "namespace", NAMESPACE_MAX)
    check_count(limit, "limit", minimum=1)
    rows = (
        StateEntry.objects.live(now())
        .filter(namespace=namespace)
        .order_by("key")
        .values_list("key", "value")[:limit]
    )
    return dict(rows)


def key_detail(
    namespace: str, key: str, limit: int = 100, oldest_first: bool = False
) -> dict[str, Any] | None:
    """One key: its value, expiry and newest (or oldest) ``limit`` items; None when nothing
    is live. ValidationError naming ``limit`` (as the API's query parameter is called)."""
    check_name(namespace, "namespace", NAMESPACE_MAX)
    check_name(key, "key", KEY_MAX)
    check_count(limit, "limit", minimum=0)
    moment = now()
    entry = StateEntry.objects.live(moment).filter(namespace=namespace, key=key).first()
    items = StateItem.objects.live(moment).filter(namespace=namespace, key=key)
    item_count = items.count()
    if entry is None and item_count == 0:
        return None
    order = ("updated_at", "id") if oldest_first else ("-updated_at", "-id")
    newest = items.order_by(*order).values("item_key", "value", "expires_at", "updated_at")[:limit]
    return {
        "namespace": namespace,
        "key": key,
        "value": entry.value if entry else None,
        "expires_at": entry.expires_at if entry else None,
        "updated_at": entry.updated_at if entry else None,
        "item_count": item_count,
        "items": list(newest),
    }
