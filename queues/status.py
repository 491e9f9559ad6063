"""What the admin and the API show about queues: counts, oldest age, the next items."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Min
from django.utils.timezone import now

from jeeves_site.echo import echoed
from queues.models import ItemStatus, Queue, QueueItem
from queues.operations import MAX_CLAIM, check_queue_id
from statestore.values import check_count


def queue_statuses(queue_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Status of every queue (or of ``queue_ids``), in id order; see ``queue_status``."""
    queues = Queue.objects.order_by("id")
    if queue_ids is not None:
        queues = queues.filter(pk__in=queue_ids)
    ids = list(queues.values_list("id", flat=True))
    items = QueueItem.objects.filter(queue_id__in=ids).order_by()
    counts = items.values_list("queue_id", "status").annotate(n=Count("id"))
    oldest = dict(
        items.filter(status=ItemStatus.PENDING)
        .values_list("queue_id")
        .annotate(first=Min("created_at"))
    )
    moment = now()
    result = {queue_id: _empty(queue_id) for queue_id in ids}
    for queue_id, status, n in counts:
        result[queue_id][_COLUMN[status]] = n
    for queue_id, created_at in oldest.items():
        age = (moment - created_at).total_seconds()
        result[queue_id]["oldest_pending_age_seconds"] = max(0.0, age)
    return list(result.values())


def queue_status(queue_id: str) -> dict[str, Any]:
    """``{"id", "depth", "claimed", "failed", "completed", "oldest_pending_age_seconds"}``.

    ``depth`` counts pending items; the age is None when nothing is pending.
    Raises Queue.DoesNotExist for an unknown queue.
    """
    check_queue_id(queue_id)
    found = queue_statuses([queue_id])
    if not found:
        raise Queue.DoesNotExist(f"queue {echoed(queue_id)} does not exist")
    return found[0]


def peek(queue_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The next ``limit`` pending items in claim order, without claiming them."""
    check_queue_id(queue_id)
    check_count(limit, "limit", 1, MAX_CLAIM)
    if not Queue.objects.filter(pk=queue_id).exists():
        raise Queue.DoesNotExist(f"queue {echoed(queue_id)} does not exist")
    fields = ("id", "payload", "priority", "attempts", "max_attempts", "dedup_key", "created_at")
    return list(QueueItem.objects.claimable(queue_id).values(*fields)[:limit])


_COLUMN = {
    ItemStatus.PENDING: "depth",
    ItemStatus.CLAIMED: "claimed",
    ItemStatus.FAILED: "failed",
    ItemStatus.COMPLETED: "completed",
}


def _empty(queue_id: str) -> dict[str, Any]:
    counts = dict.fromkeys(_COLUMN.values(), 0)
    return {"id": queue_id, **counts, "oldest_pending_age_seconds": None}
