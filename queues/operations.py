"""Queue operations: what the script client, the admin and the API call.

A claim is one atomic statement on both back-ends (see ``queues.sql``). Each
claim gets a token; ``complete`` and ``fail`` change an item only while that
token still holds it. Time comes from ``django.utils.timezone.now``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from jeeves_site.echo import echoed
from queues.exceptions import ClaimLost
from queues.maintenance import reclaim_expired_leases
from queues.models import Queue, QueueItem, queue_id_validator
from queues.sql import claim_items, complete_held, has_expired_claims
from statestore.ttl import MAX_SECONDS, parse_duration
from statestore.values import check_count, check_json, check_text, replace_surrogates

DEFAULT_LEASE = timedelta(minutes=5)
MAX_CLAIM = 1000
MAX_ERROR_LENGTH = 10_000
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class ClaimedItem:
    """An item handed to one consumer until ``lease_expires_at``."""

    id: int
    payload: Any
    attempts: int
    max_attempts: int
    lease_expires_at: datetime
    token: str


def check_queue_id(queue_id: object) -> str:
    """A queue id as the ``queues`` table accepts it."""
    if not isinstance(queue_id, str) or not 0 < len(queue_id) <= 200:
        raise ValidationError(
            {"queue": [f"must be a queue id of 1-200 characters: {echoed(queue_id)}"]}
        )
    try:
        queue_id_validator(queue_id)
    except ValidationError as exc:
        raise ValidationError({"queue": [f"{echoed(queue_id)}: {exc.messages[0]}"]}) from None
    return queue_id


def check_item_id(item_id: object) -> int:
    """A queue item id: a positive integer."""
    return check_count(item_id, "item_id", minimum=1)


# A lease shorter than the timestamps' resolution in practice ran out as it was granted.
MIN_LEASE_S = 0.001


def lease_duration(lease: object) -> timedelta:
    """``lease`` as seconds (a positive number) or a duration string; None: the default."""
    if lease is None:
        return DEFAULT_LEASE
    if isinstance(lease, str):
        return parse_duration(lease, "lease")
    if (
        isinstance(lease, bool)
        or not isinstance(lease, int | float)
        or (isinstance(lease, float) and not math.isfinite(lease))  # an int may be too big
    ):
        raise ValidationError(
            {"lease": [f"must be seconds or a duration like 90s, not {echoed(lease)}"]}
        )
    if not MIN_LEASE_S <= lease <= MAX_SECONDS:  # not echoed: an int may have too many digits
        raise ValidationError(
            {
                "lease": [
                    f"must be at least {MIN_LEASE_S} seconds (1 ms) and at most "
                    f"{MAX_SECONDS} seconds (1000 years)"
                ]
            }
        )
    return timedelta(seconds=lease)


# -- producing -----------------------------------------------------------------------------

# The original runner's default for a queue nobody defined (its queue-ops.ts): a
# script written for it must not see its failed item retried.
FIRST_ENQUEUE_MAX_ATTEMPTS = 1


def enqueue(
    queue_id: str, payload: Any, priority: int = 0, max_attempts: int | None = None
) -> int | None:
    """Add ``payload`` to the queue (created if undefined); return its id.

    A queue created here allows ``FIRST_ENQUEUE_MAX_ATTEMPTS`` attempts per item.

    Returns None when the queue de-duplicates and an item with the same key exists
    in the queue's scope. Concurrent producers are safe: the database's unique
    index on live keys decides between them.
    """
    check_queue_id(queue_id)
    if payload is None:
        raise ValidationError({"payload": ["is required; null is not a payload"]})
    check_json(payload, "payload")
    check_count(priority, "priority", *INT32)
    if max_attempts is not None:
        check_count(max_attempts, "max_attempts", 1, INT32[1])
    queue, _ = Queue.objects.get_or_create(
        id=queue_id, defaults={"name": queue_id, "max_attempts": FIRST_ENQUEUE_MAX_ATTEMPTS}
    )
    key = queue.dedup_key_for(payload)
    item = QueueItem(
        queue=queue,
        payload=payload,
        priority=priority,
        max_attempts=max_attempts or queue.max_attempts,
        dedup_key=key,
    )
    try:
        with transaction.atomic():
            if key is not None and QueueItem.objects.duplicates(queue, key).exists():
                return None
            item.save(force_insert=True)
    except IntegrityError:
        if key is not None and QueueItem.objects.duplicates(queue, key).exists():
            return None
        raise
    return item.pk


# -- consuming -----------------------------------------------------------------------------


def dequeue(queue_id: str, count: int = 1, lease: object = None) -> list[ClaimedItem]:
    """Claim up to ``count`` pending items, highest priority then oldest first.

    Claims of this queue whose lease ran out are returned to it first. Each
    returned item counts one attempt and is held until its lease ends or it is
    completed or failed.
    """
    check_queue_id(queue_id)
    check_count(count, "count", 1, MAX_CLAIM)
    held_for = lease_duration(lease)
    moment = now()
    token = uuid.uuid4().hex
    if has_expired_claims(queue_id, moment):
        reclaim_expired_leases(moment, batch_size=MAX_CLAIM, queue_id=queue_id)
    lease_expires_at = moment + held_for
    return [
        ClaimedItem(item_id, payload, attempts, max_attempts, lease_expires_at, token)
        for item_id, payload, attempts, max_attempts in claim_items(
            queue_id, count, token, moment, lease_expires_at
        )
    ]


def complete(item_id: int, token: str) -> None:
    """Mark a claimed item completed; ClaimLost if ``token`` no longer holds it."""
    check_item_id(item_id)
    check_text(token, "token")
    if not complete_held(item_id, token, now()):
        raise _not_held(item_id)


def fail(item_id: int, token: str, error: object = None) -> str:
    """End a claim without success; return the item's new status.

    The item goes back to pending while it has attempts left, else to ``failed``;
    either way it records ``error``.
    """
    check_item_id(item_id)
    check_text(token, "token")
    text = "" if error is None else _storable_error(str(error))
    with transaction.atomic():
        if not QueueItem.objects.held(item_id, token).release(text, now()):
            raise _not_held(item_id)
        return QueueItem.objects.values_list("status", flat=True).get(pk=item_id)


def _storable_error(text: str) -> str:
    """A consumer's error message as both back-ends store it: NUL shown as \\0, a lone
    surrogate as U+FFFD (it is a report, not data, so it is kept rather than refused)."""
    return replace_surrogates(text[:MAX_ERROR_LENGTH].replace("\x00", "\\0"))


def _not_held(item_id: int) -> Exception:
    status = QueueItem.objects.filter(pk=item_id).values_list("status", flat=True).first()
    if status is None:
        return QueueItem.DoesNotExist(f"queue item {item_id} does not exist")
    return ClaimLost(
        f"queue item {item_id} is not held by this claim (it is {status} now; a claim "
        "ends when its lease runs out and the item is handed out again)"
    )
