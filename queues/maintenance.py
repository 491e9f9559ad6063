"""Housekeeping: expired claims back to the queue, finished items pruned or retried.

The scheduler's maintenance loop calls the functions that take ``now`` and a
batch size; each does one short batch and returns how many items it changed, so
the loop can call again while there is more and never stalls a fire.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from queues.models import LEASE_EXPIRED_ERROR, ItemStatus, Queue, QueueItem


def reclaim_expired_leases(
    now: datetime, batch_size: int = 500, queue_id: str | None = None
) -> int:
    """Return up to ``batch_size`` claims whose lease ran out; how many were returned.

    Each goes back to pending, or to failed if that claim was its last attempt.
    Rows another transaction is busy with are skipped, so this never waits.
    """
    expired = QueueItem.objects.lease_expired(now)
    if queue_id is not None:
        expired = expired.filter(queue_id=queue_id)
    with transaction.atomic():
        ids = list(
            expired.order_by()
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        return (
            QueueItem.objects.filter(id__in=ids)
            .lease_expired(now)
            .release(LEASE_EXPIRED_ERROR, now)
        )


def prune_finished_items(now: datetime, batch_size: int = 500) -> int:
    """Delete up to ``batch_size`` completed and failed items older than their queue's retention."""
    deleted = 0
    for queue in Queue.objects.order_by("id"):
        for status in (ItemStatus.COMPLETED, ItemStatus.FAILED):
            kept_for = queue.retention_for(status)
            if kept_for is None or deleted >= batch_size:
                continue
            old = queue.items.filter(status=status, completed_at__lt=now - kept_for)
            ids = list(old.order_by().values_list("id", flat=True)[: batch_size - deleted])
            if ids:
                deleted += QueueItem.objects.filter(id__in=ids, status=status).delete()[0]
    return deleted


def retry_failed_items(items: QuerySet[QueueItem]) -> int:
    """Give the failed items among ``items`` a fresh set of attempts; return how many.

    An item whose de-duplication key is live again (a newer copy was enqueued) is
    left failed: retrying it would put the same work in the queue twice.
    """
    failed = items.filter(status=ItemStatus.FAILED).order_by()
    reset = {
        "status": ItemStatus.PENDING,
        "attempts": 0,
        "error": "",
        "completed_at": None,
        "claimed_at": None,
    }
    retried = failed.filter(dedup_key__isnull=True).update(**reset)
    for item_id in failed.filter(dedup_key__isnull=False).values_list("id", flat=True):
        try:
            with transaction.atomic():
                retried += QueueItem.objects.filter(id=item_id, status=ItemStatus.FAILED).update(
                    **reset
                )
        except IntegrityError:
            continue
    return retried


def purge_completed_items(items: QuerySet[QueueItem]) -> int:
    """Delete the completed items among ``items``; return how many."""
    return items.filter(status=ItemStatus.COMPLETED).order_by().delete()[0]
