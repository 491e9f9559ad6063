"""A token in the URL: ``/t/<token>/jobs`` is ``/jobs`` with ``Authorization: Bearer <token>``.

For clients that can be given a base URL but no header (the original runner's
OpenClaw plugin takes only ``apiUrl``). It works for both dialects, the root and
``/api/``. The prefix is cut before anything else sees the path, so Django's
request log never holds the token; gunicorn's access log is redacted by
``jeeves_site/gunicorn.conf.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

PREFIX = re.compile(r"^/t/([^/]+)(/.*)?$", re.DOTALL)


class TokenPrefixMiddleware:
    """Move a ``/t/<token>`` prefix into the Authorization header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = PREFIX.match(request.path_info)
        if match is None:
            return self.get_response(request)
        if request.META.get("HTTP_AUTHORIZATION"):
            # Django logs this refusal with request.path: never with the token in it.
            _set_path(request, f"/t/***{match.group(2) or ''}")
            return JsonResponse(
                {"error": "send the token in the URL or in the Authorization header, not both"},
                status=400,
            )
        token, rest = match.group(1), match.group(2) or "/"
        request.META["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        _set_path(request, rest)
        request.__dict__.pop("headers", None)  # built from META, maybe already cached
        request.token_in_url = True
        return self.get_response(request)


def _set_path(request: HttpRequest, path_info: str) -> None:
    request.META["PATH_INFO"] = path_info
    request.path_info = path_info
    request.path = request.META.get("SCRIPT_NAME", "").rstrip("/") + path_info
