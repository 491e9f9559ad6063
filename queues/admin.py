"""Admin for queue definitions and their items, with retry and purge actions."""

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR as ORDER_PARAM
from django.db.models import Count, Min, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from jeeves_site.admin_tools import CappedCountPaginator
from jeeves_site.json_forms import JSON_FIELD_OVERRIDES
from queues.maintenance import purge_completed_items, retry_failed_items
from queues.models import ItemStatus, Queue, QueueItem
from queues.status import queue_status, queue_statuses
from runner.describe import duration_words


def _report(admin_view, request: HttpRequest, done: int, what: str) -> None:
    admin_view.message_user(request, f"{done} {what}.", messages.SUCCESS)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = (
        "id", "name", "depth", "claimed", "failed", "oldest_pending", "max_attempts", "created_at",
    )  # fmt: skip
    search_fields = ("id", "name")
    readonly_fields = ("status", "created_at", "updated_at")
    actions = ("retry_failed", "purge_completed")

    def get_queryset(self, request):
        queues = super().get_queryset(request)
        if ORDER_PARAM not in request.GET:
            return queues  # the listed page's counts come in two grouped queries, below

        # Sorted by a count: counts per status in the list query itself (a join over every
        # item, 140 ms at 100,000 items on SQLite, against 50 ms for the page's groups).
        def count(status: str) -> Count:
            return Count("items", filter=Q(items__status=status))

        return queues.annotate(
            pending_n=count(ItemStatus.PENDING),
            claimed_n=count(ItemStatus.CLAIMED),
            failed_n=count(ItemStatus.FAILED),
            oldest_pending_at=Min("items__created_at", filter=Q(items__status="pending")),
        )

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        listed = [queue for queue in changelist.result_list if not hasattr(queue, "pending_n")]
        if listed:
            moment = timezone.now()
            counts = {row["id"]: row for row in queue_statuses([queue.pk for queue in listed])}
            for queue in listed:
                row = counts[queue.pk]
                queue.pending_n, queue.claimed_n = row["depth"], row["claimed"]
                queue.failed_n = row["failed"]
                age = row["oldest_pending_age_seconds"]
                queue.oldest_pending_at = None if age is None else moment - timedelta(seconds=age)
        return changelist

    @admin.display(description="pending", ordering="pending_n")
    def depth(self, queue: Queue) -> int:
        return queue.pending_n

    @admin.display(description="claimed", ordering="claimed_n")
    def claimed(self, queue: Queue) -> int:
        return queue.claimed_n

    @admin.display(description="failed", ordering="failed_n")
    def failed(self, queue: Queue) -> int:
        return queue.failed_n

    @admin.display(description="oldest pending", ordering="oldest_pending_at")
    def oldest_pending(self, queue: Queue) -> str:
        if queue.oldest_pending_at is None:
            return "—"
        return duration_words((timezone.now() - queue.oldest_pending_at).total_seconds() * 1000)

    def get_readonly_fields(self, request, obj=None):
        # The id is the primary key: an edited id would save a second queue and keep the first.
        return (*self.readonly_fields, "id") if obj else self.readonly_fields

    @admin.display(description="status")
    def status(self, queue: Queue) -> str:
        if queue.pk is None or queue._state.adding:
            return "-"
        counts = queue_status(queue.pk)
        age = counts["oldest_pending_age_seconds"]
        oldest = "" if age is None else f", oldest pending {age:.0f}s old"
        return (
            f"{counts['depth']} pending, {counts['claimed']} claimed, {counts['failed']} failed, "
            f"{counts['completed']} completed{oldest}"
        )

    # The actions change or delete the queues' items, so they need the items' permissions.
    def has_change_items_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("queues.change_queueitem")

    def has_delete_items_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("queues.delete_queueitem")

    @admin.action(
        description="Retry the failed items of the selected queues", permissions=["change_items"]
    )
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        retried = retry_failed_items(QueueItem.objects.filter(queue__in=queryset))
        _report(self, request, retried, "failed items put back in their queues")

    @admin.action(
        description="Purge the completed items of the selected queues",
        permissions=["delete_items"],
    )
    def purge_completed(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        purged = purge_completed_items(QueueItem.objects.filter(queue__in=queryset))
        _report(self, request, purged, "completed items deleted")


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = ("id", "queue", "status", "priority", "attempts", "dedup_key", "created_at")
    list_filter = ("status", "queue")
    search_fields = ("dedup_key",)
    readonly_fields = ("created_at", "claimed_at", "lease_expires_at", "completed_at")
    exclude = ("claim_token",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ("retry_failed", "purge_completed")

    @admin.action(description="Retry the selected failed items", permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[QueueItem]) -> None:
        _report(
            self, request, retry_failed_items(queryset), "failed items put back in their queues"
        )

    @admin.action(description="Purge the selected completed items", permissions=["delete"])
    def purge_completed(self, request: HttpRequest, queryset: QuerySet[QueueItem]) -> None:
        _report(self, request, purge_completed_items(queryset), "completed items deleted")
