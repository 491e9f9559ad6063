"""Who may use the API: a bearer token, or a logged-in staff user of the admin.

A wrong or revoked token is refused at once rather than falling back to the
session, so a script with a bad token gets 401, not a confusing CSRF error. The
session path checks CSRF on writes (Django's own check), because a browser sends
the session cookie with any cross-site form post; a bearer token is never sent
by a browser on its own, so it needs no CSRF token. Neither class logs a header:
ninja's ``HttpBearer`` logs an unexpected Authorization value under DEBUG.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja.errors import AuthenticationError, HttpError
from ninja.security.base import AuthBase
from ninja.utils import check_csrf

from runner.api import run_tokens, tokens
from runner.api.errors import error_body
from runner.api.permissions import RUN_TOKEN_SCOPE


class BearerToken(AuthBase):
    """``Authorization: Bearer jr_...``: the request acts as that token's user.

    A token whose user was deactivated or lost staff status is refused with 401,
    like a revoked one: the credential no longer works (403 would say "valid, but
    not for this"), and the answer is the same for every endpoint. With
    ``run_tokens=True`` (the state and queue routers) a run's own token (``jrr_...``,
    see ``runner.api.run_tokens``) is accepted too; elsewhere it gets 403.
    """

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __init__(self, run_tokens: bool = False) -> None:
        self.run_tokens = run_tokens
        super().__init__()

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationError(message="the Authorization header must be 'Bearer <token>'")
        secret = secret.strip()
        if run_tokens.is_run_secret(secret):
            return self._run_token(secret)
        try:
            token = tokens.authenticate(secret)
        except tokens.TokenRefused as exc:
            raise AuthenticationError(message=str(exc)) from None
        if token is None:
            raise AuthenticationError(message="the API token is not valid or has been revoked")
        return token

    def _run_token(self, secret: str) -> Any:
        access = run_tokens.authenticate(secret)
        if access is None:
            raise AuthenticationError(
                message="the run's API token is not valid, or its run has ended"
            )
        if not self.run_tokens:
            raise HttpError(403, RUN_TOKEN_SCOPE)
        return access


class StaffSession(AuthBase):
    """The admin's session cookie of an active staff user; writes need the CSRF token."""

    openapi_type = "apiKey"
    openapi_in = "cookie"

    def __init__(self) -> None:
        self.openapi_name = settings.SESSION_COOKIE_NAME
        super().__init__()

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if not (user.is_active and user.is_staff):
            raise HttpError(403, "only staff users may use the API with an admin session")
        if check_csrf(request) is not None:
            raise HttpError(
                403,
                "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header",
            )
        return user


def operators_only(view: Callable) -> Callable:
    """Guard the schema and docs like the API: a valid token, or the admin's staff login.

    A refused token answers as on every API route: 401 for a wrong or revoked one, 403
    for a run's own token (``JR_API_TOKEN``, state and queues only), ``{"error"}``.
    """
    staff_view = staff_member_required(view)

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            if BearerToken()(request) is not None:
                return view(request, *args, **kwargs)
        except AuthenticationError as exc:
            return JsonResponse(error_body(exc.message), status=401)
        except HttpError as exc:
            return JsonResponse(error_body(str(exc)), status=exc.status_code)
        return staff_view(request, *args, **kwargs)

    return guarded
