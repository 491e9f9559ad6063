"""Status, queues and state in the original's dialect (read only, as the original).

Same domain functions as ``runner.api.status``, ``runner.api.queues`` and
``runner.api.state``; an unknown queue or state key reads as empty, as in the
original, and ``?path=`` runs a JSONPath query over the answer.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from queues.models import Queue
from queues.status import peek, queue_status
from runner.api.errors import bad_input
from runner.api.original.access import authorize, root_auth
from runner.api.original.jsonpath import query
from runner.api.original.shapes import sqlite_time
from runner.health import health_summary
from statestore.listing import key_detail, list_namespaces, namespace_values

status_router = Router()
# A run's own token (JR_API_TOKEN) may read state and queues here too.
data_router = Router(auth=root_auth(run_tokens=True))
# The original returned a whole namespace; this bounds one answer.
MAX_NAMESPACE_KEYS = 10_000
ORIGINAL_HEALTH = ("totalJobs", "running", "failedRegistrations", "okLastHour", "errorsLastHour")


@status_router.get("/status")
def status(request: HttpRequest) -> dict[str, Any]:
    """``{name, version, uptime (s), status: healthy|degraded, health: {...}}``."""
    authorize(request, "status")
    health = health_summary()
    body = health.as_json()
    return {
        "name": body["name"],
        "version": body["version"],
        "uptime": int(health.uptime_s or 0),
        "status": "healthy" if health.status == "ok" else "degraded",
        "health": {name: body["health"][name] for name in ORIGINAL_HEALTH},
    }


@data_router.get("/queues")
def list_queues(request: HttpRequest) -> dict:
    """``{queues: [id]}``."""
    authorize(request, "queues.list")
    return {"queues": list(Queue.objects.order_by("id").values_list("id", flat=True))}


@data_router.get("/queues/{name}/status")
def one_queue_status(request: HttpRequest, name: str) -> dict:
    """``{depth, claimedCount, failedCount, oldestAge (ms) | null}``; zeros when unknown."""
    authorize(request, "queues.status")
    try:
        found = queue_status(name)
    except Queue.DoesNotExist:
        return {"depth": 0, "claimedCount": 0, "failedCount": 0, "oldestAge": None}
    age = found["oldest_pending_age_seconds"]
    return {
        "depth": found["depth"],
        "claimedCount": found["claimed"],
        "failedCount": found["failed"],
        "oldestAge": None if age is None else round(age * 1000),
    }


@data_router.get("/queues/{name}/peek")
def peek_items(request: HttpRequest, name: str, limit: int = 10) -> dict:
    """``{items: [{id, payload, priority, createdAt}]}``: the next pending items, unclaimed."""
    authorize(request, "queues.peek")
    try:
        items = peek(name, limit)
    except Queue.DoesNotExist:
        items = []
    return {
        "items": [
            {
                "id": item["id"],
                "payload": item["payload"],
                "priority": item["priority"],
                "createdAt": sqlite_time(item["created_at"]),
            }
            for item in items
        ]
    }


@data_router.get("/state")
def namespaces(request: HttpRequest) -> dict:
    """``{namespaces: [...]}``."""
    authorize(request, "state.namespaces")
    return {"namespaces": list_namespaces()}


@data_router.get("/state/{namespace}")
def values(request: HttpRequest, namespace: str, path: str | None = None) -> dict:
    """``{key: value}``, or with ``path`` ``{result, count}``."""
    authorize(request, "state.values")
    found = namespace_values(namespace, MAX_NAMESPACE_KEYS)
    return query(path, found) if path else found


@data_router.get("/state/{namespace}/{key}")
def key(
    request: HttpRequest,
    namespace: str,
    key: str,
    limit: int = 100,
    order: str = "desc",
    path: str | None = None,
) -> dict:
    """``{value, items: [{itemKey, value, updatedAt}], count}``; a missing key reads as empty."""
    authorize(request, "state.key")
    if order not in ("asc", "desc"):
        raise bad_input({"order": "must be asc or desc"})
    detail = key_detail(namespace, key, limit, oldest_first=order == "asc")
    items = [
        {
            "itemKey": item["item_key"],
            "value": item["value"],
            "updatedAt": sqlite_time(item["updated_at"]),
        }
        for item in (detail or {}).get("items", [])
    ]
    body = {"value": (detail or {}).get("value"), "items": items, "count": len(items)}
    return query(path, body) if path else body
