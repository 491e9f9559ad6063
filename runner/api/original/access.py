"""Who may use the root dialect, and the one permission checkpoint its routes call.

The same credentials as ``/api/`` (a bearer token, incl. ``/t/<token>/`` in the
URL, or a staff session), plus, when ``JEEVES_API_LOOPBACK_ANONYMOUS`` is on, a
request from the loopback address with no credentials and no proxy header: it acts
as the service user ``settings.API_LOOPBACK_USER`` (created on first use with the
runner's view, add, change, delete and run permissions, and no password; narrow
them in the admin).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from ninja.security.base import AuthBase

from runner.api.auth import BearerToken, StaffSession
from runner.api.permissions import require

LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
# A request relayed by a proxy on this host also comes from 127.0.0.1: never trust it.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
# A browser on this host also connects from 127.0.0.1, and any web page may make it
# post to us; browsers mark their requests with these headers (programs such as the
# plugin's Node fetch send neither), so a browser never acts as the service user.
BROWSER_HEADERS = ("HTTP_ORIGIN", "HTTP_SEC_FETCH_SITE")
# The apps whose permissions the loopback user starts with.
SERVICE_APPS = ("runner", "statestore", "queues")
CONFIG_PERMISSIONS = ("view_config", "change_config")  # runner.api.config


def is_direct_loopback(request: HttpRequest) -> bool:
    """True for a request from 127.0.0.1 or ::1 that names no proxy and no browser origin."""
    if request.META.get("REMOTE_ADDR", "") not in LOOPBACK_ADDRESSES:
        return False
    return not any(request.META.get(header) for header in (*PROXY_HEADERS, *BROWSER_HEADERS))


def why_no_credentials(request: HttpRequest) -> str:
    """What a request without usable credentials is told: how to send a token, and why
    the loopback opening did not take it when that is on."""
    send = (
        "authentication required: send 'Authorization: Bearer <token>', put the token in "
        "the URL as /t/<token>/..."
    )
    if not settings.API_LOOPBACK_ANONYMOUS:
        return f"{send}, or set JEEVES_API_LOOPBACK_ANONYMOUS=1 for local callers"
    if request.META.get("REMOTE_ADDR", "") not in LOOPBACK_ADDRESSES:
        return f"{send} (JEEVES_API_LOOPBACK_ANONYMOUS admits callers on this host only)"
    headers = (*PROXY_HEADERS, *BROWSER_HEADERS)
    carried = [key[5:].replace("_", "-").title() for key in headers if request.META.get(key)]
    return (
        f"{send} (JEEVES_API_LOOPBACK_ANONYMOUS does not admit a request relayed by a proxy "
        f"or sent by a browser, and this one carries {', '.join(carried)})"
    )


class LoopbackAnonymous(AuthBase):
    """No credentials, from loopback, while ``API_LOOPBACK_ANONYMOUS`` is on: the service user."""

    openapi_type = "apiKey"

    def __call__(self, request: HttpRequest) -> Any:
        if not settings.API_LOOPBACK_ANONYMOUS or request.headers.get("Authorization"):
            return None
        if not is_direct_loopback(request):
            return None
        return loopback_user()


def loopback_user() -> AbstractBaseUser:
    """The service user anonymous loopback requests act as; created on first use."""
    User = get_user_model()
    user = User.objects.filter(username=settings.API_LOOPBACK_USER).first()
    if user is not None:
        return user
    try:
        with transaction.atomic():
            # Staff, as the API asks of every acting user; with no usable password it
            # can never log in to the admin.
            user = User(username=settings.API_LOOPBACK_USER, is_active=True, is_staff=True)
            user.set_unusable_password()
            user.save()
            user.user_permissions.set(
                Permission.objects.filter(
                    Q(content_type__app_label__in=SERVICE_APPS)
                    | Q(content_type__app_label="api", codename__in=CONFIG_PERMISSIONS)
                )
            )
    except IntegrityError:  # another request created it first
        return User.objects.get(username=settings.API_LOOPBACK_USER)
    return user


def root_auth(run_tokens: bool = False) -> list[AuthBase]:
    """The root dialect's authentication, in order; ``run_tokens`` for state and queues."""
    return [BearerToken(run_tokens=run_tokens), StaffSession(), LoopbackAnonymous()]


def authorize(request: HttpRequest, operation: str) -> None:
    """The checkpoint every root route calls: /api/'s own (``runner.api.permissions``).

    403 unless the caller's user holds what ``operation`` needs; a run's token reaches
    only the state and queue routes.
    """
    require(request, operation)
