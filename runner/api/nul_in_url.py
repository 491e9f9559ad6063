"""A NUL (``%00``) in a URL's path or query string is refused with 400 before any view.

A NUL cannot be sent to PostgreSQL in text (``DataError``: the request answered 500),
while SQLite looks it up and finds nothing (302, 404 or 200): the admin's change pages
and filters, and each API route, answered the same URL differently on the two databases.
No id, name or filter value of the runner may hold one, so the whole request is refused,
the same on both: ``{"error": ...}`` on the API's paths (both dialects), plain text
elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from runner.api.errors import error_body
from runner.api.handlers import API_PREFIXES

REFUSAL = "the URL must not contain a NUL character (%00)"


class NulInUrlMiddleware:
    """Answer 400 to a request whose path or query string holds a NUL."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not has_nul(request):
            return self.get_response(request)
        if request.path_info.startswith(API_PREFIXES):
            return JsonResponse(error_body(REFUSAL), status=400)
        return HttpResponseBadRequest(REFUSAL, content_type="text/plain; charset=utf-8")


def has_nul(request: HttpRequest) -> bool:
    """Whether the decoded path, or the query string as its parameters are decoded, holds
    a NUL."""
    query = request.META.get("QUERY_STRING", "")
    return "\x00" in request.path_info or "\x00" in unquote(query, errors="replace")
