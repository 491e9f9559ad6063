"""Key/value state with optional TTL, and named collections of items."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from statestore.values import check_storable


class ExpiringQuerySet(models.QuerySet):
    """Rows that carry an optional ``expires_at``: expired ones read as absent at once."""

    def live(self, now: datetime) -> ExpiringQuerySet:
        """Rows still readable at ``now``."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def expired(self, now: datetime) -> ExpiringQuerySet:
        """Rows past their expiry at ``now``, which maintenance deletes."""
        return self.filter(expires_at__lte=now)


class StateEntry(models.Model):
    """One value under (namespace, key); absent once ``expires_at`` has passed."""

    namespace = models.CharField(max_length=200)
    key = models.CharField(max_length=500)
    value = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ExpiringQuerySet.as_manager()

    class Meta:
        db_table = "state"
        verbose_name = "state value"
        ordering = ["namespace", "key"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="state_unique_key"),
            models.CheckConstraint(condition=~Q(namespace=""), name="state_namespace_not_empty"),
            models.CheckConstraint(condition=~Q(key=""), name="state_key_not_empty"),
        ]
        indexes = [
            # Maintenance deletes expired values.
            models.Index(
                fields=["expires_at"],
                condition=Q(expires_at__isnull=False),
                name="state_expiring",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key}"

    def clean(self) -> None:
        check_storable(self, ("namespace", "key", "value"))


class StateItem(models.Model):
    """One member of the collection at (namespace, key), e.g. an "already seen" id."""

    namespace = models.CharField(max_length=200)
    key = models.CharField(max_length=500)
    item_key = models.CharField(max_length=500)
    value = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ExpiringQuerySet.as_manager()

    class Meta:
        db_table = "state_items"
        ordering = ["namespace", "key", "item_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "key", "item_key"], name="state_items_unique_item"
            ),
            models.CheckConstraint(condition=~Q(item_key=""), name="state_items_key_not_empty"),
        ]
        indexes = [
            # prune_items keeps the newest; list_item_keys orders by recency.
            models.Index(fields=["namespace", "key", "updated_at"], name="state_items_recency"),
            models.Index(
                fields=["expires_at"],
                condition=Q(expires_at__isnull=False),
                name="state_items_expiring",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key}[{self.item_key}]"

    def clean(self) -> None:
        check_storable(self, ("namespace", "key", "item_key", "value"))
