"""Named work queues of JSON items with de-duplication, priority and leased claims."""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q


class ItemStatus(models.TextChoices):
    PENDING = "pending", "pending"
    CLAIMED = "claimed", "claimed"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"


queue_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
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
        help_text='{"path": "$.id", "scope": "pending" | "all"}; blank: no de-duplication.',
    )
    retention = models.JSONField(
        default=dict,
        blank=True,
        help_text='How long finished items are kept, e.g. {"completed": "7d", "failed": "30d"}.',
    )
    max_attempts = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])
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


class QueueItem(models.Model):
    """One unit of work; claimed by at most one consumer at a time."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    priority = models.IntegerField(default=0)
    dedup_key = models.CharField(max_length=500, null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=64, null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

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
