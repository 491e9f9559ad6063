"""Admin for API tokens: create one (its secret is shown once, on the page that follows), revoke."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from runner.api.models import ApiToken
from runner.api.tokens import issue

RECORD_FIELDS = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = RECORD_FIELDS
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    actions = ("revoke",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Superusers see every token; other users only their own."""
        tokens = super().get_queryset(request).select_related("user")
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None):
        if obj is not None:
            return RECORD_FIELDS
        # A token acts with its user's permissions: only a superuser may make one for
        # someone else; everyone else's tokens are their own.
        return ("name", "user") if request.user.is_superuser else ("name",)

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "user" in form.base_fields:
            form.base_fields["user"].required = False
            form.base_fields["user"].help_text = "The token acts as this user; blank: yourself."
        return form

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None):
        return () if obj is None else RECORD_FIELDS

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if not change:
            if not request.user.is_superuser or obj.user_id is None:
                obj.user = request.user
            # Kept on the request only long enough to render the next page.
            request._api_token_secret = issue(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None):
        """Show the new secret on this response instead of redirecting, so it is never
        stored anywhere (a message would sit in a cookie or the session)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API token “{obj.name}” created",
            "token": obj,
            "secret": request._api_token_secret,
        }
        response = TemplateResponse(request, "admin/api/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Revoke the selected active tokens; they stop working at once."""
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
