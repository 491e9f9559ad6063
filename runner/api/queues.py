"""Queues: list, status, peek, and enqueue, dequeue (a leased claim), done, fail.

Every write goes through ``queues.operations``, the functions the Python script
client calls, so de-duplication, claims and attempts behave the same over HTTP.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from jeeves_site.echo import echoed
from queues import operations
from queues.exceptions import ClaimLost
from queues.models import Queue, QueueItem
from queues.status import peek, queue_status
from runner.api.auth import BearerToken, StaffSession
from runner.api.body import json_object
from runner.api.errors import Conflict, NotFound, bad_input
from runner.api.permissions import DEFINE_QUEUE, require
from runner.api.schemas import (
    ClaimedOut,
    DequeueIn,
    EnqueuedOut,
    EnqueueIn,
    ErrorOut,
    FailedOut,
    FailIn,
    OkOut,
    PeekOut,
    QueueListOut,
    QueueStatusOut,
    TokenIn,
    body_doc,
)
from statestore.values import MAX_BIGINT

# A run's own token (JR_API_TOKEN) may use these operations.
router = Router(tags=["queues"], auth=[BearerToken(run_tokens=True), StaffSession()])
ERRORS = {400: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut}


def _known_queue(name: str) -> None:
    operations.check_queue_id(name)
    if not Queue.objects.filter(pk=name).exists():
        raise NotFound(f"queue {echoed(name)} not found")


@router.get("/queues", response=QueueListOut, summary="Every queue's id")
def list_queues(request: HttpRequest) -> dict:
    """The ids of all defined queues (a queue is defined by its first item, or by add_queue)."""
    require(request, "queues.list")
    return {"queues": list(Queue.objects.order_by("id").values_list("id", flat=True))}


@router.get(
    "/queues/{name}/status",
    response={200: QueueStatusOut, **ERRORS},
    summary="Depth, claimed, failed, oldest pending age",
)
def status(request: HttpRequest, name: str) -> dict:
    """Counts by item status; ``oldestAge`` is the oldest pending item's age in ms."""
    require(request, "queues.status")
    found = queue_status(name)
    age = found["oldest_pending_age_seconds"]
    return {
        "depth": found["depth"],
        "claimedCount": found["claimed"],
        "failedCount": found["failed"],
        "completedCount": found["completed"],
        "oldestAge": None if age is None else round(age * 1000),
    }


@router.get(
    "/queues/{name}/peek", response={200: PeekOut, **ERRORS}, summary="The next pending items"
)
def peek_items(request: HttpRequest, name: str, limit: int = 10) -> dict:
    """The next ``limit`` items in claim order, without claiming them."""
    require(request, "queues.peek")
    items = peek(name, limit)
    return {
        "items": [
            {
                "id": item["id"],
                "payload": item["payload"],
                "priority": item["priority"],
                "attempts": item["attempts"],
                "createdAt": item["created_at"],
            }
            for item in items
        ]
    }


@router.post(
    "/queues/{name}/enqueue",
    response={201: EnqueuedOut, 200: EnqueuedOut, **ERRORS},
    openapi_extra=body_doc(EnqueueIn),
    summary="Add an item",
)
def enqueue(request: HttpRequest, name: str) -> Status:
    """Add ``payload`` (created: 201 with its id); 200 with ``id: null`` when de-duplicated."""
    require(request, "queues.enqueue")
    operations.check_queue_id(name)
    if not Queue.objects.filter(pk=name).exists():  # this enqueue defines the queue
        require(request, "queues.enqueue", *DEFINE_QUEUE)
    body = json_object(request, ("payload", "priority", "max_attempts"))
    if "payload" not in body:
        raise bad_input({"payload": "is required"})
    item_id = operations.enqueue(
        name, body["payload"], body.get("priority", 0), body.get("max_attempts")
    )
    if item_id is None:
        return Status(200, {"id": None, "duplicate": True})
    return Status(201, {"id": item_id, "duplicate": False})


@router.post(
    "/queues/{name}/dequeue",
    response={200: ClaimedOut, **ERRORS},
    openapi_extra=body_doc(DequeueIn, required=False),
    summary="Claim items for a lease",
)
def dequeue(request: HttpRequest, name: str) -> dict:
    """Claim up to ``count`` items for ``lease`` (seconds or ``90s``/``5m``; default 5 min).

    Each item comes with the claim's ``token``, which ``done`` and ``fail`` need.
    """
    require(request, "queues.dequeue")
    body = json_object(request, ("count", "lease"), required=False)
    _known_queue(name)
    claimed = operations.dequeue(name, body.get("count", 1), body.get("lease"))
    return {
        "items": [
            {
                "id": item.id,
                "payload": item.payload,
                "attempts": item.attempts,
                "maxAttempts": item.max_attempts,
                "leaseExpiresAt": item.lease_expires_at,
                "token": item.token,
            }
            for item in claimed
        ]
    }


def _held_item(request: HttpRequest, name: str, item_id: int, allowed: tuple[str, ...]) -> dict:
    body = json_object(request, allowed)
    if not isinstance(body.get("token"), str) or not body["token"]:
        raise bad_input({"token": "is required: the token that dequeue returned with the item"})
    known = 0 < item_id <= MAX_BIGINT and operations.check_queue_id(name)
    if not known or not QueueItem.objects.filter(pk=item_id, queue_id=name).exists():
        raise NotFound(f"queue {echoed(name)} has no item {item_id}")
    return body


@router.post(
    "/queues/{name}/items/{item_id}/done",
    response={200: OkOut, **ERRORS},
    openapi_extra=body_doc(TokenIn),
    summary="Complete a claimed item",
)
def done(request: HttpRequest, name: str, item_id: int) -> dict:
    """Mark the item completed; 409 if the claim no longer holds it (its lease ran out)."""
    require(request, "queues.done")
    body = _held_item(request, name, item_id, ("token",))
    try:
        operations.complete(item_id, body["token"])
    except ClaimLost as exc:
        raise Conflict(str(exc)) from None
    return {"ok": True}


@router.post(
    "/queues/{name}/items/{item_id}/fail",
    response={200: FailedOut, **ERRORS},
    openapi_extra=body_doc(FailIn),
    summary="Give a claimed item back",
)
def fail(request: HttpRequest, name: str, item_id: int) -> dict:
    """Back to pending while attempts remain, else ``failed``; 409 if the claim is lost."""
    require(request, "queues.fail")
    body = _held_item(request, name, item_id, ("token", "error"))
    try:
        status = operations.fail(item_id, body["token"], body.get("error"))
    except ClaimLost as exc:
        raise Conflict(str(exc)) from None
    return {"ok": True, "status": status}
