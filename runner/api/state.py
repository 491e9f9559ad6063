"""State: namespaces, a namespace's values, a key with its items; set and delete with TTL.

Reads and writes go through ``statestore``'s operations, the functions the
Python script client calls, so TTLs, expiry and validation are the same.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from runner.api.auth import BearerToken, StaffSession
from runner.api.body import json_object
from runner.api.errors import NotFound, bad_input
from runner.api.permissions import require
from runner.api.schemas import (
    ErrorOut,
    ItemIn,
    ItemOut,
    KeyOut,
    NamespacesOut,
    OkOut,
    ValueIn,
    body_doc,
)
from statestore import operations
from statestore.listing import key_detail, list_namespaces, namespace_values
from statestore.values import check_count

# A run's own token (JR_API_TOKEN) may use these operations.
router = Router(tags=["state"], auth=[BearerToken(run_tokens=True), StaffSession()])
ERRORS = {400: ErrorOut, 404: ErrorOut, 413: ErrorOut}
# The most values or items one answer lists: as runs and queue peeks, 1000.
MAX_LISTED = 1000
KEY = "/state/{namespace}/{key}"
ITEM = KEY + "/items/{item_key}"


@router.get("/state", response=NamespacesOut, summary="Every namespace")
def namespaces(request: HttpRequest) -> dict:
    """Namespaces holding a live value or item."""
    require(request, "state.namespaces")
    return {"namespaces": list_namespaces()}


@router.get(
    "/state/{namespace}",
    response={200: dict[str, Any], 400: ErrorOut},
    summary="A namespace's values by key",
)
def values(request: HttpRequest, namespace: str, limit: int = 1000) -> dict:
    """The live values of the namespace as ``{key: value}`` (at most ``limit``, 1-1000, key
    order)."""
    require(request, "state.values")
    check_count(limit, "limit", 1, MAX_LISTED)
    return namespace_values(namespace, limit)


@router.get(KEY, response={200: KeyOut, **ERRORS}, summary="A key's value and its items")
def key(request: HttpRequest, namespace: str, key: str, limit: int = 100) -> dict:
    """The key's value and its newest ``limit`` items (0-1000); 404 when it holds nothing
    live."""
    require(request, "state.key")
    check_count(limit, "limit", 0, MAX_LISTED)
    detail = key_detail(namespace, key, limit)
    if detail is None:
        raise NotFound(f"state key {namespace}/{key} not found")
    items = [
        {
            "itemKey": item["item_key"],
            "value": item["value"],
            "updatedAt": item["updated_at"],
            "expiresAt": item["expires_at"],
        }
        for item in detail["items"]
    ]
    return {
        "value": detail["value"],
        "expiresAt": detail["expires_at"],
        "updatedAt": detail["updated_at"],
        "items": items,
        "count": len(items),
        "total": detail["item_count"],
    }


@router.put(KEY, response={200: OkOut, **ERRORS}, openapi_extra=body_doc(ValueIn))
def set_value(request: HttpRequest, namespace: str, key: str) -> dict:
    """Store ``value`` at the key; with ``ttl`` (``90s``, ``60m``, ``24h``, ``30d``) it expires."""
    require(request, "state.set")
    body = json_object(request, ("value", "ttl"))
    if "value" not in body:
        raise bad_input({"value": "is required (null is a value)"})
    operations.set_state(namespace, key, body["value"], body.get("ttl"))
    return {"ok": True}


@router.delete(KEY, response={200: OkOut, **ERRORS})
def delete_value(request: HttpRequest, namespace: str, key: str) -> dict:
    """Remove the key's value (its items stay); 404 if it had none."""
    require(request, "state.delete")
    if not operations.delete_state(namespace, key):
        raise NotFound(f"state key {namespace}/{key} has no value")
    return {"ok": True}


@router.get(ITEM, response={200: ItemOut, **ERRORS}, summary="One item of a key's collection")
def item(request: HttpRequest, namespace: str, key: str, item_key: str) -> dict:
    """The item's value (null when stored without one); 404 when absent or expired."""
    require(request, "state.item")
    if not operations.has_item(namespace, key, item_key):
        raise NotFound(f"state item {namespace}/{key}/{item_key} not found")
    return {"itemKey": item_key, "value": operations.get_item(namespace, key, item_key)}


@router.put(ITEM, response={200: OkOut, **ERRORS}, openapi_extra=body_doc(ItemIn, required=False))
def set_item(request: HttpRequest, namespace: str, key: str, item_key: str) -> dict:
    """Add or replace the item; the body (``value``, ``ttl``) may be left out."""
    require(request, "state.set_item")
    body = json_object(request, ("value", "ttl"), required=False)
    operations.set_item(namespace, key, item_key, body.get("value"), body.get("ttl"))
    return {"ok": True}


@router.delete(ITEM, response={200: OkOut, **ERRORS})
def delete_item(request: HttpRequest, namespace: str, key: str, item_key: str) -> dict:
    """Remove the item; 404 if it was not there."""
    require(request, "state.delete_item")
    if not operations.delete_item(namespace, key, item_key):
        raise NotFound(f"state item {namespace}/{key}/{item_key} not found")
    return {"ok": True}
