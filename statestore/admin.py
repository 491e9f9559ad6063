"""Admin for browsing and editing state values and collection items."""

from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

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
    """Items listed under their collection: ``namespace/key`` links to that collection alone."""

    list_display = ("collection", "item_key", "item_value", "expires_at", "updated_at")
    list_display_links = ("item_key",)
    list_filter = ("namespace",)
    search_fields = ("namespace", "key", "item_key")
    readonly_fields = ("created_at", "updated_at")
    paginator = CappedCountPaginator
    show_full_result_count = False

    @admin.display(description="collection", ordering="key")
    def collection(self, item: StateItem):
        query = urlencode({"namespace": item.namespace, "key": item.key})
        url = f"{reverse('admin:statestore_stateitem_changelist')}?{query}"
        return format_html('<a href="{}">{}/{}</a>', url, item.namespace, item.key)

    @admin.display(description="value")
    def item_value(self, item: StateItem):
        # Most collections are sets of keys ("already seen"): no value is not a missing one.
        return "(member, no value)" if item.value is None else item.value
