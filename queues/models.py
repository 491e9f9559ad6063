"""Named work queues of JSON items with de-duplication, priority and leased claims."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Case, F, Q, Value, When

from queues.dedup import dedup_key_of
from queues.definitions import (
    DEFAULT_RETENTION,
    compile_jsonpath,
    validate_dedup_config,
    validate_retention,
)
from statestore.ttl import parse_duration
from statestore.values import check_storable

# The largest max_attempts: PostgreSQL's integer column; SQLite's would hold more, and
# the same value must get the same answer on both.
MAX_ATTEMPTS = 2**31 - 1


class ItemStatus(models.TextChoices):
    PENDING = "pending", "pending"
    CLAIMED = "claimed", "claimed"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"


LIVE_STATUSES = (ItemStatus.PENDING, ItemStatus.CLAIMED)
# Why an item whose claim ran out went back to pending (or to failed, if that was its last try).
LEASE_EXPIRED_ERROR = "claim lease expired before done or fail"


queue_id_validator = RegexValidator(
    r"\A[A-Za-z0-9][A-Za-z0-9._:-]*\Z",  # \Z, not $: "$" also matches before a final newline
    "use letters, digits, '.', '_', ':' and '-', starting with a letter or digit",
)


class Queue(models.Model):
    """A queue's definition: de-duplication, retention and attempt limit."""

    id = models.CharField(primary_key=True, max_length=200, validators=[queue_id_validator])
    name = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    dedup_config = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_dedup_config],
        help_text='{"path": "$.id", "scope": "pending" | "all"}; blank: no de-duplication.',
    )
    retention = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_retention],
        help_text='How long finished items are kept, e.g. {"completed": "7d", "failed": "30d"} '
        "(the defaults); null keeps them forever.",
    )
    max_attempts = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(MAX_ATTEMPTS)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "queues"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="queues_attempts_min"),
        ]

    def __str__(self) -> str:
        return self.id

    def clean(self) -> None:
        # A cleared form field arrives as None; the column holds {} for "defaults".
        if self.retention is None:
            self.retention = {}
        check_storable(self, ("name", "description", "dedup_config", "retention"))

    @property
    def dedup_scope(self) -> str | None:
        """``pending``, ``all``, or None when the queue does not de-duplicate."""
        return (self.dedup_config or {}).get("scope", "pending") if self.dedup_config else None

    def dedup_key_for(self, payload: Any) -> str | None:
        """The payload's de-duplication key: the first match of the queue's JSONPath."""
        if not self.dedup_config:
            return None
        try:
            path = compile_jsonpath(self.dedup_config["path"])
        except Exception as exc:  # stored before the plain subset was enforced
            raise ValidationError(
                {"dedup_config": f"queue {self.id!r}: its dedup path {exc}; change the queue"}
            ) from None
        return dedup_key_of(path, payload)

    def dedup_statuses(self) -> tuple[str, ...]:
        """Statuses an earlier item with the same key must have to make a new one a duplicate."""
        if self.dedup_scope == "all":
            return (*LIVE_STATUSES, ItemStatus.COMPLETED)
        return LIVE_STATUSES

    def retention_for(self, status: str) -> timedelta | None:
        """How long a finished item with ``status`` is kept; None keeps it forever."""
        retention = self.retention or {}
        text = retention[status] if status in retention else DEFAULT_RETENTION[status]
        return None if text is None else parse_duration(text, status)


class QueueItemQuerySet(models.QuerySet):
    """The claim rules: which items can be claimed, who holds one, how a claim ends."""

    def claimable(self, queue_id: str) -> QueueItemQuerySet:
        """Pending items of a queue in claim order: higher priority first, then oldest."""
        return self.filter(queue_id=queue_id, status=ItemStatus.PENDING).order_by("-priority", "id")

    def held(self, item_id: int, token: str) -> QueueItemQuerySet:
        """The item, if it is still claimed under ``token``."""
        return self.filter(pk=item_id, status=ItemStatus.CLAIMED, claim_token=token)

    def lease_expired(self, now: datetime) -> QueueItemQuerySet:
        """Claimed items whose lease ran out by ``now``."""
        return self.filter(status=ItemStatus.CLAIMED, lease_expires_at__lte=now)

    def duplicates(self, queue: Queue, dedup_key: str) -> QueueItemQuerySet:
        """Earlier items of ``queue`` that make a new one with ``dedup_key`` a duplicate."""
        return self.filter(queue=queue, dedup_key=dedup_key, status__in=queue.dedup_statuses())

    def release(self, error: str, now: datetime) -> int:
        """End claims without success: back to pending while attempts remain, else failed.

        The attempt was counted when the item was claimed.
        """
        retry = Q(attempts__lt=F("max_attempts"))
        return self.update(
            status=Case(
                When(retry, then=Value(ItemStatus.PENDING)), default=Value(ItemStatus.FAILED)
            ),
            completed_at=Case(
                When(retry, then=Value(None)),
                default=Value(now),
                output_field=models.DateTimeField(),
            ),
            error=error,
            claim_token=None,
            lease_expires_at=None,
        )


class QueueItem(models.Model):
    """One unit of work; claimed by at most one consumer at a time."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    priority = models.IntegerField(default=0)
    dedup_key = models.CharField(max_length=500, null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(MAX_ATTEMPTS)]
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=64, null=True, blank=True)
    # When the item finished: completed, or failed for good.
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = QueueItemQuerySet.as_manager()

    class Meta:
        db_table = "queue_items"
        ordering = ["-priority", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ItemStatus.values), name="queue_items_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1), name="queue_items_attempts_min"
            ),
            models.CheckConstraint(
                condition=~Q(status="claimed") | Q(lease_expires_at__isnull=False),
                name="queue_items_claim_has_lease",
            ),
            # De-duplication holds under concurrent producers: two live items of
            # one queue never share a key, whichever insert commits first.
            models.UniqueConstraint(
                fields=["queue", "dedup_key"],
                condition=Q(status__in=["pending", "claimed"]) & Q(dedup_key__isnull=False),
                name="queue_items_live_dedup_unique",
            ),
        ]
        indexes = [
            # dequeue: the next pending items, priority first, then oldest.
            models.Index(
                fields=["queue", "-priority", "id"],
                condition=Q(status="pending"),
                name="queue_items_claimable",
            ),
            # Lease expiry sweeps look only at claimed items.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="claimed"),
                name="queue_items_leases",
            ),
            # De-duplication against completed items (scope "all").
            models.Index(
                fields=["queue", "dedup_key"],
                condition=Q(dedup_key__isnull=False),
                name="queue_items_dedup",
            ),
            # Retention pruning and queue status counts.
            models.Index(fields=["queue", "status", "completed_at"], name="queue_items_by_status"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id} #{self.pk} ({self.status})"

    def clean(self) -> None:
        check_storable(self, ("payload", "dedup_key", "error"))
