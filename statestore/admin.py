"""Admin for browsing and editing state values and collection items."""

from django.contrib import admin

from jeeves_site.admin_tools import CappedCountPaginator
from jeeves_site.json_forms import JSON_FIELD_OVERRIDES
from statestore.models import StateEntry, StateItem


@admin.register(StateEntry)
class StateEntryAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = ("namespace", "key", "value", "expires_at", "updated_at")
    list_filter = ("namespace",)
    search_fields = ("namespace", "key")
    readonly_fields = ("created_at", "updated_at")
    paginator = CappedCountPaginator
    show_full_result_count = False


@admin.register(StateItem)
class StateItemAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FIELD_OVERRIDES
    list_display = ("namespace", "key", "item_key", "value", "expires_at", "updated_at")
    search_fields = ("namespace", "key", "item_key")
    readonly_fields = ("created_at", "updated_at")
    paginator = CappedCountPaginator
    show_full_result_count = False
