"""Admin for queue definitions and their items."""

from django.contrib import admin

from jeeves_site.admin_tools import CappedCountPaginator
from queues.models import Queue, QueueItem


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "max_attempts", "created_at")
    search_fields = ("id", "name")
    readonly_fields = ("created_at", "updated_at")


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    list_display = ("id", "queue", "status", "priority", "attempts", "dedup_key", "created_at")
    list_filter = ("status", "queue")
    search_fields = ("dedup_key",)
    readonly_fields = ("created_at", "claimed_at", "lease_expires_at", "completed_at")
    exclude = ("claim_token",)
    paginator = CappedCountPaginator
    show_full_result_count = False
