"""Admin helpers shared by the apps: bounded counts and a free-text filter."""

from __future__ import annotations

from functools import cached_property

from django.contrib import admin
from django.core.paginator import Paginator


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows, so a changelist over millions of runs stays fast.

    ``COUNT(*)`` over a sliced queryset stops at the slice; past the cap the
    admin shows the cap and pages beyond it are reached by filtering.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


class TextInputFilter(admin.SimpleListFilter):
    """A list filter that takes typed text instead of listing every choice."""

    template = "admin/text_input_filter.html"

    def lookups(self, request, model_admin):
        # One dummy choice makes the admin render the filter at all.
        return [("", "")]

    def choices(self, changelist):
        query = changelist.get_filters_params()
        query.pop(self.parameter_name, None)
        yield {
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "other_params": [(k, v) for k, values in query.items() for v in values],
        }
