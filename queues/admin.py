"""Admin for queue definitions and their items, with retry and purge actions."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jeeves_site.admin_tools import CappedCountPaginator
from jeeves_site.json_forms import JSON_FIELD_OVERRIDES
from queues.maintenance import purge_completed_items, retry_failed_items
from queues.models import Queue, QueueItem
from queues.status import queue_status


def _report(admin_view, request: HttpRequest, done: int, what: str) -> None:
    admin_view.message_user(request, f"{done} {what}.", messages.SUCCESS)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = ("id", "name", "max_attempts", "created_at")
    search_fields = ("id", "name")
    readonly_fields = ("status", "created_at", "updated_at")
    actions = ("retry_failed", "purge_completed")

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
